// The browser camera's picture: a camera (getUserMedia) or the screen (getDisplayMedia), at
// the height and frame rate the user picked where the device allows, and the one quality
// layer it publishes, named the way the Python camera names layers ("480p").

/** The sources a user may pick. */
export const Source = Object.freeze({ CAMERA: 'camera', SCREEN: 'screen' });

export const HEIGHTS = [360, 480, 720, 1080];
export const FRAME_RATES = [15, 24, 30];

/**
 * A MediaStream with one video track from `source`, at about `height` lines and `fps`
 * (16:9 asked of a camera; a device that cannot gives what it has). `deviceId` picks a
 * camera ('' for the default). Rejects when the user or the browser refuses.
 */
export async function openSource({ source, deviceId = '', height, fps }) {
  if (source === Source.SCREEN) {
    // The screen keeps its own shape: fit it into the height asked for.
    return navigator.mediaDevices.getDisplayMedia({
      video: { height: { max: height }, frameRate: { ideal: fps, max: fps } },
      audio: false,
    });
  }
  return navigator.mediaDevices.getUserMedia({
    video: {
      ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
      width: { ideal: 2 * Math.round((height * 8) / 9) }, // even, as encoders like it
      height: { ideal: height },
      frameRate: { ideal: fps, max: fps },
    },
    audio: false,
  });
}

/** [{deviceId, label}] of the cameras; labels are empty until the user allowed one. */
export async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices
    .filter((device) => device.kind === 'videoinput')
    .map(({ deviceId, label }, index) => ({ deviceId, label: label || `camera ${index + 1}` }));
}

/**
 * The layer a track makes: {name, width, height, fps}, from what the device really
 * delivers. `fps` is what was asked when the device does not say.
 */
export function layerOf(track, fps) {
  const settings = track.getSettings();
  const width = settings.width ?? 640;
  const height = settings.height ?? 480;
  const rate = Math.round((settings.frameRate || fps) * 1000) / 1000;
  return { name: `${height}p`, width, height, fps: Math.min(rate, fps) };
}

// The browser camera's picture: a camera (getUserMedia) or the screen (getDisplayMedia), at
// the height and frame rate the user picked where the device allows, and the one quality
// layer it publishes, named the way the Python camera names layers ("480p"); and its
// sound, a microphone (getUserMedia).

/** The sources a user may pick. */
export const Source = Object.freeze({ CAMERA: 'camera', SCREEN: 'screen' });

export const HEIGHTS = [360, 480, 720, 1080];
export const FRAME_RATES = [15, 24, 30];

/**
 * {media, soundError}: a MediaStream with one video track from `source`, at about `height`
 * lines and `fps` (16:9 asked of a camera; a device that cannot gives what it has), and the
 * microphone's track where `microphone` asks for one (a deviceId, '' for the default; null:
 * no sound). `deviceId` picks a camera ('' for the default). Rejects when the user or the
 * browser refuses the picture; a microphone refused or missing leaves the stream without
 * sound, and `soundError` says why (null otherwise).
 */
export async function openSource({ source, deviceId = '', height, fps, microphone = null }) {
  if (source === Source.SCREEN) {
    // The screen keeps its own shape: fit it into the height asked for. Its own sound
    // (a tab's) is not asked for: the stream's sound is the microphone.
    const media = await navigator.mediaDevices.getDisplayMedia({
      video: { height: { max: height }, frameRate: { ideal: fps, max: fps } },
      audio: false,
    });
    return addMicrophone(media, microphone);
  }
  const video = {
    ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
    width: { ideal: 2 * Math.round((height * 8) / 9) }, // even, as encoders like it
    height: { ideal: height },
    frameRate: { ideal: fps, max: fps },
  };
  if (microphone !== null) {
    // Both at once: one permission prompt. Refused, or no microphone: the picture alone.
    try {
      const media = await navigator.mediaDevices.getUserMedia({ video, audio: microphoneConstraints(microphone) });
      return { media, soundError: null };
    } catch (error) {
      const media = await navigator.mediaDevices.getUserMedia({ video, audio: false });
      return { media, soundError: describe(error) };
    }
  }
  return { media: await navigator.mediaDevices.getUserMedia({ video, audio: false }), soundError: null };
}

async function addMicrophone(media, microphone) {
  if (microphone === null) return { media, soundError: null };
  try {
    const sound = await navigator.mediaDevices.getUserMedia({ audio: microphoneConstraints(microphone), video: false });
    for (const track of sound.getAudioTracks()) media.addTrack(track);
    return { media, soundError: null };
  } catch (error) {
    return { media, soundError: describe(error) };
  }
}

/** The microphone `deviceId` ('' for the default), processed as for a call: echo
 * cancellation (a viewer's page on the same computer plays it back), noise suppression
 * and gain control, the browser's defaults. */
function microphoneConstraints(deviceId) {
  return deviceId ? { deviceId: { exact: deviceId } } : true;
}

function describe(error) {
  return error?.message || error?.name || String(error);
}

/** [{deviceId, label}] of the cameras; labels are empty until the user allowed one. */
export async function listCameras() {
  return listDevices('videoinput', 'camera');
}

/** [{deviceId, label}] of the microphones; labels are empty until the user allowed one. */
export async function listMicrophones() {
  return listDevices('audioinput', 'microphone');
}

async function listDevices(kind, noun) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices
    .filter((device) => device.kind === kind && device.deviceId !== 'default')
    .map(({ deviceId, label }, index) => ({ deviceId, label: label || `${noun} ${index + 1}` }));
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

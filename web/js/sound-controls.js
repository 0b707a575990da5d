// The player's sound controls, over the bottom of the picture: the mute button, the volume
// slider, the level meter and a note saying why there is no sound, when there is none.
// The viewer's choice (sound on or off, and the volume) is kept in localStorage for the
// whole site: one click on "Unmute" and every later visit starts with sound, where the
// browser's autoplay rules allow it (else the button asks for that one click again).

const STORAGE_KEYS = Object.freeze({ ON: 'peercam.sound', VOLUME: 'peercam.volume' });

/** What the sound bar shows (#sound[data-state]). */
export const SoundState = Object.freeze({
  NONE: 'none', // the camera sends no sound
  UNAVAILABLE: 'unavailable', // it does, but not on this path (the relay without WebCodecs)
  MUTED: 'muted', // the viewer's choice, or the browser's until a click
  ON: 'on',
});

const NOTES = {
  [SoundState.NONE]: 'no sound from this camera',
  [SoundState.UNAVAILABLE]: 'no sound on this path',
  [SoundState.MUTED]: '',
  [SoundState.ON]: '',
};

/** The remembered choice: {on, volume}; sound starts off until the viewer turns it on once. */
export function loadSoundChoice() {
  const on = readStorage(STORAGE_KEYS.ON) === 'on';
  const volume = Number(readStorage(STORAGE_KEYS.VOLUME) ?? 1);
  return { on, volume: Number.isFinite(volume) && volume >= 0 && volume <= 1 ? volume : 1 };
}

export class SoundControls {
  #bar = document.getElementById('sound');
  #toggle = document.getElementById('sound-toggle');
  #volume = document.getElementById('volume');
  #level = document.getElementById('sound-level');
  #note = document.getElementById('sound-note');

  /** onToggle(): the viewer clicked the mute button; onVolume(volume): moved the slider. */
  constructor({ onToggle, onVolume }) {
    this.#toggle.addEventListener('click', () => onToggle());
    this.#volume.addEventListener('input', () => {
      const volume = Number(this.#volume.value);
      writeStorage(STORAGE_KEYS.VOLUME, String(volume));
      onVolume(volume);
    });
  }

  /**
   * Show a SoundState (null: no camera yet, nothing to show); `waiting` (with MUTED): the
   * viewer chose sound, and the browser waits for a click before it plays any.
   */
  show(state, { volume, waiting = false } = {}) {
    this.#bar.hidden = state === null;
    if (state === null) return;
    this.#bar.dataset.state = state;
    const playable = state === SoundState.MUTED || state === SoundState.ON;
    this.#toggle.hidden = !playable;
    this.#toggle.textContent = state === SoundState.ON ? 'Mute' : 'Unmute';
    this.#toggle.setAttribute('aria-pressed', String(state !== SoundState.ON));
    this.#toggle.title = state === SoundState.ON ? 'turn the sound off' : 'turn the sound on';
    this.#volume.disabled = !playable;
    if (volume !== undefined) this.#volume.value = String(volume);
    this.#level.hidden = !playable;
    this.#note.textContent = waiting ? 'click to hear the sound' : NOTES[state];
  }

  /** The meter: the level played (0 to 1). */
  showLevel(level) {
    this.#level.value = level;
  }

  /** Remember the viewer's choice for every later visit to this site. */
  remember(on) {
    writeStorage(STORAGE_KEYS.ON, on ? 'on' : 'off');
  }
}

function readStorage(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage off (private mode, policy): the choice lasts for this page only
  }
}

function writeStorage(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // as above
  }
}

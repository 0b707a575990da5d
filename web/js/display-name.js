// The viewer's display name, for chat and the stream's viewer list: asked once and kept
// in localStorage; ?name= in the page's URL wins and is kept too.

import { MAX_NAME } from './protocol.js';

const STORAGE_KEY = 'peercam.name';

/**
 * A name the server accepts (peercam/shared/protocol.py: check_display_name): printable,
 * trimmed, at most MAX_NAME characters (code points, as Python counts them).
 */
export function cleanName(name) {
  const printable = name
    .replace(/[\p{C}\p{Zl}\p{Zp}]/gu, '')
    .replace(/\p{Zs}/gu, ' ') // Python counts only the plain space as printable
    .trim();
  return Array.from(printable).slice(0, MAX_NAME).join('').trim();
}

/** The name to use: ?name= (then remembered), else the remembered one, else ''. */
export function loadName(query) {
  const fromUrl = new URLSearchParams(query).get('name');
  if (fromUrl !== null && cleanName(fromUrl)) return saveName(fromUrl);
  return cleanName(readStorage() ?? '');
}

/** Remember a name for next time; returns it cleaned. */
export function saveName(name) {
  const cleaned = cleanName(name);
  try {
    localStorage.setItem(STORAGE_KEY, cleaned);
  } catch {
    // Storage may be off (private mode, policy): the name lasts for this page only.
  }
  // ?name= wins on reload: it must not bring back a name the viewer has changed.
  const url = new URL(location.href);
  if (url.searchParams.has('name')) {
    url.searchParams.set('name', cleaned);
    history.replaceState(null, '', url);
  }
  return cleaned;
}

function readStorage() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

// The front page: the live streams, refreshed from /api/streams every two seconds.

const REFRESH_MS = 2000;

const list = document.getElementById('streams');
const empty = document.getElementById('empty');
const listStatus = document.getElementById('list-status');

async function refresh() {
  try {
    const response = await fetch('/api/streams', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    showStreams(await response.json());
    listStatus.hidden = true;
  } catch (error) {
    // Keep the last list on screen: a server restart should not blank the page.
    listStatus.textContent = `Cannot reach the server (${error.message}), retrying…`;
    listStatus.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

function showStreams(streams) {
  const nowSeconds = Date.now() / 1000;
  list.replaceChildren(...streams.map((stream) => streamItem(stream, nowSeconds)));
  empty.hidden = streams.length > 0;
}

function streamItem(stream, nowSeconds) {
  const item = element('li', 'stream');
  item.dataset.stream = stream.name;

  const link = element('a', 'stream-name', stream.name);
  link.href = `/view/${encodeURIComponent(stream.name)}`;

  const details = element('span', 'stream-details');
  details.append(
    element('span', 'resolution', `${stream.width}x${stream.height}@${formatFps(stream.fps)}`),
    element('span', 'codec', stream.codec),
    element('span', 'viewers', stream.viewer_count === 1 ? '1 viewer' : `${stream.viewer_count} viewers`),
    element('span', 'uptime', `live for ${Math.max(0, Math.floor((nowSeconds - stream.since) / 60))}m`),
  );
  item.append(link, ' ', details);
  return item;
}

function formatFps(fps) {
  return Number.isInteger(fps) ? String(fps) : fps.toFixed(1);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

refresh();

// encore web player: catalog, album page, demo store (dev only), HLS playback through hls.js
// (MSE), sales chart. No framework and no build step: the file is served as it is.
'use strict';

const $ = (id) => document.getElementById(id);

// Everything the page knows, in one place; exposed as `window.encore` so the browser test
// (tests/web.rs) and a curious developer can read the player's state.
const state = {
  demoStore: false,
  session: null, // {user, token, expiresAt (ms)}: the account token
  play: null, // {album, token, expiresAt (ms), albums}: the play token for `album`
  album: null, // GET /v1/albums/{id}
  owned: new Map(), // album id -> the user's library entry (nameplate)
  mode: null, // 'preview' | 'full' while something is loaded
  track: null, // the track number being played
  levels: [], // rendition names hls.js offers, in hls.js level order
  level: -1, // hls.js level playing
  error: null, // the message shown for the last error, if any
  errorKind: null, // 'expired' | 'preview-only' | 'network' | 'media' | 'other'
  mediaErrors: [], // fatal media errors hls.js reported
  warnings: [], // non-fatal hls.js errors (it recovered)
  hls: null,
  retried: false,
};
window.encore = state;

// ---------------------------------------------------------------- messages

function say(text, kind) {
  const m = $('message');
  m.textContent = text;
  m.className = kind || 'info';
}

function fail(kind, text) {
  state.error = text;
  state.errorKind = kind;
  say(text, 'error');
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

// What a person should read for an API failure: the cases a fan meets get their own words.
function explain(err) {
  const type = (err.problem && err.problem.type) || '';
  if (err.status === 0) {
    return ['network', 'Network error: the server cannot be reached. Check the connection and try again.'];
  }
  if (err.status === 401) {
    return ['expired', 'Your session has expired. Sign in again to keep listening.'];
  }
  if (type.endsWith(':not-purchased')) {
    return ['preview-only', 'Preview only: buy the album to hear every track in full.'];
  }
  if (type.endsWith(':purchase-refunded')) {
    return ['preview-only', 'This purchase was refunded: only the previews play now.'];
  }
  return ['other', err.message];
}

function report(err) {
  if (err instanceof ApiError) {
    const [kind, text] = explain(err);
    fail(kind, text);
  } else {
    fail('other', String(err && err.message ? err.message : err));
  }
}

// ---------------------------------------------------------------- API

async function api(method, path, opts) {
  const o = opts || {};
  const headers = {};
  if (o.token) headers.Authorization = 'Bearer ' + o.token;
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      cache: o.cache || 'default',
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
    });
  } catch (e) {
    throw new ApiError(0, { title: 'network error', detail: String(e) });
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// ---------------------------------------------------------------- formatting

function money(price, currency) {
  if (price === null || price === undefined) return 'free';
  const code = currency || 'CNY';
  try {
    const f = new Intl.NumberFormat(undefined, { style: 'currency', currency: code });
    const digits = f.resolvedOptions().maximumFractionDigits;
    return f.format(price / Math.pow(10, digits));
  } catch (_) {
    return `${price} ${code} (minor units)`;
  }
}

function clock(s) {
  if (!isFinite(s) || s < 0) s = 0;
  const m = Math.floor(s / 60);
  const r = Math.floor(s % 60);
  return `${m}:${r < 10 ? '0' : ''}${r}`;
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// A grey square, so an album without a cover still has its place (CSP allows data: images).
const NO_COVER =
  'data:image/svg+xml,' +
  encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160"><rect width="160" height="160" fill="#ccc"/></svg>');

// ---------------------------------------------------------------- session (demo store)

function saveSession() {
  try {
    if (state.session) sessionStorage.setItem('encore.session', JSON.stringify(state.session));
    else sessionStorage.removeItem('encore.session');
  } catch (_) {
    // Private mode without storage: the session lives as long as the page.
  }
}

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem('encore.session') || 'null');
    if (s && s.expiresAt > Date.now()) state.session = s;
  } catch (_) {
    state.session = null;
  }
}

async function signIn() {
  const user = $('user').value.trim();
  if (!user) {
    fail('other', 'Type a user name to sign in.');
    return false;
  }
  try {
    const s = await api('POST', '/v1/dev/session', { body: { user } });
    state.session = { user: s.user, token: s.token, expiresAt: Date.now() + s.expires_in * 1000 };
    state.play = null;
    saveSession();
    showSession();
    await refreshOwned();
    say(`Signed in as ${s.user} (demo store).`);
    return true;
  } catch (e) {
    report(e);
    return false;
  }
}

function showSession() {
  $('whoami').textContent = state.session ? `signed in as ${state.session.user}` : '';
}

// A session is needed even for previews (play tokens come from account tokens); in the demo
// store the page signs in with the name in the box rather than stop the fan.
async function ensureSession() {
  if (state.session && state.session.expiresAt > Date.now() + 5000) return true;
  if (state.session) {
    state.session = null;
    saveSession();
    showSession();
    fail('expired', 'Your session has expired. Sign in again to keep listening.');
    return false;
  }
  if (!state.demoStore) {
    fail('other', 'Sign in through your store to listen.');
    return false;
  }
  return signIn();
}

async function refreshOwned() {
  state.owned = new Map();
  if (!state.session) return;
  const lib = await api('GET', `/v1/users/${encodeURIComponent(state.session.user)}/albums`, {
    token: state.session.token,
  });
  for (const a of lib.albums) state.owned.set(a.album, a);
  renderOwnership();
}

async function playToken(album) {
  if (state.play && state.play.album === album && state.play.expiresAt > Date.now() + 30000) {
    return state.play.token;
  }
  const t = await api('POST', '/v1/play-tokens', {
    token: state.session.token,
    body: { albums: [album] },
  });
  state.play = { album, token: t.token, expiresAt: Date.now() + t.expires_in * 1000, albums: t.albums };
  return t.token;
}

async function buy() {
  if (!state.album || !(await ensureSession())) return;
  try {
    const receipt = await api('POST', '/v1/dev/purchases', {
      body: { user: state.session.user, album: state.album.id },
    });
    state.play = null; // the next play token must name the album
    await refreshOwned();
    await loadChart();
    say(`Bought ${state.album.title}: you are buyer No. ${receipt.buyer_number}.`);
    state.error = null;
    state.errorKind = null;
  } catch (e) {
    report(e);
  }
}

// ---------------------------------------------------------------- catalog, album, chart

async function loadCatalog() {
  const list = $('albums');
  try {
    const data = await api('GET', '/v1/albums');
    list.replaceChildren();
    for (const a of data.albums) {
      const li = el('li');
      const b = el('button', { 'data-album': a.id, class: 'album-link' }, a.title);
      b.addEventListener('click', () => openAlbum(a.id));
      li.append(b, document.createTextNode(` — ${a.artist || 'unknown artist'} · ${money(a.price, a.currency)}`));
      list.append(li);
    }
    if (data.albums.length === 0) list.append(el('li', {}, 'No albums yet.'));
  } catch (e) {
    report(e);
  }
}

async function openAlbum(id) {
  try {
    const a = await api('GET', `/v1/albums/${encodeURIComponent(id)}`);
    state.album = a;
    $('album').hidden = false;
    $('album-title').textContent = a.title;
    $('album-artist').textContent = a.artist || '';
    $('album-price').textContent = money(a.price, a.currency);
    $('cover').src = a.cover || NO_COVER;
    const ol = $('tracks');
    ol.replaceChildren();
    for (const t of a.tracks) {
      const li = el('li', { 'data-track': t.number });
      li.append(document.createTextNode(`${t.title || 'Track ' + t.number} (${clock(t.duration_seconds)})`));
      const pv = el('button', { class: 'preview', 'data-track': t.number }, 'Preview');
      pv.addEventListener('click', () => playPreview(t.number));
      const full = el('button', { class: 'play', 'data-track': t.number }, 'Play');
      full.addEventListener('click', () => playFull(t.number));
      li.append(pv, full);
      ol.append(li);
    }
    location.hash = '#/album/' + encodeURIComponent(id);
    renderOwnership();
  } catch (e) {
    report(e);
  }
}

function renderOwnership() {
  const a = state.album;
  if (!a) return;
  const mine = state.owned.get(a.id);
  $('nameplate').textContent = mine ? mine.nameplate : '';
  $('buy').disabled = !!mine || !state.demoStore;
  $('buy').textContent = mine ? 'Bought' : `Buy for ${money(a.price, a.currency)}`;
  $('play-album').disabled = !mine;
  for (const b of document.querySelectorAll('#tracks button.play')) b.disabled = !mine;
}

async function loadChart() {
  try {
    // The chart may be cached for 10 s (max-age): revalidate, so a purchase shows at once.
    const c = await api('GET', '/v1/charts/albums?window=all', { cache: 'no-cache' });
    const body = $('chart').tBodies[0];
    body.replaceChildren();
    for (const row of c.albums) {
      const tr = el('tr', { 'data-album': row.album });
      for (const v of [row.rank, row.title, row.artist || '', row.units]) tr.append(el('td', {}, String(v)));
      body.append(tr);
    }
  } catch (e) {
    report(e);
  }
}

// ---------------------------------------------------------------- playback

// Where track n starts on the album timeline (the album playlist plays every track in order).
function trackOffset(n) {
  let t = 0;
  for (const tr of state.album.tracks) {
    if (tr.number === n) return t;
    t += tr.duration_seconds;
  }
  return 0;
}

function trackAt(seconds) {
  let t = 0;
  for (const tr of state.album.tracks) {
    t += tr.duration_seconds;
    if (seconds < t) return tr.number;
  }
  return state.album.tracks.length;
}

function stop() {
  if (state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
  state.levels = [];
  state.level = -1;
  $('quality').replaceChildren();
  $('quality').disabled = true;
}

async function playPreview(n) {
  if (!state.album || !(await ensureSession())) return;
  try {
    await playToken(state.album.id);
  } catch (e) {
    report(e);
    return;
  }
  const a = encodeURIComponent(state.album.id);
  start(`/v1/albums/${a}/tracks/${n}/preview/index.m3u8`, 'preview', n, 0);
}

async function playFull(n) {
  if (!state.album || !(await ensureSession())) return;
  try {
    await playToken(state.album.id);
  } catch (e) {
    report(e);
    return;
  }
  if (!state.play.albums.includes(state.album.id)) {
    fail('preview-only', 'Preview only: buy the album to hear every track in full.');
    return;
  }
  // The album playlist, so playback runs on from track to track without a gap.
  const a = encodeURIComponent(state.album.id);
  start(`/v1/albums/${a}/master.m3u8`, 'full', n, trackOffset(n));
}

function start(url, mode, track, startAt) {
  stop();
  state.error = null;
  state.errorKind = null;
  state.mediaErrors = [];
  state.warnings = [];
  state.retried = false;
  if (!window.Hls || !window.Hls.isSupported()) {
    fail('media', 'This browser cannot play HLS through Media Source Extensions.');
    return;
  }
  const audio = $('audio');
  const hls = new window.Hls({
    // No worker: the CSP keeps scripts to this origin's files.
    enableWorker: false,
    startPosition: startAt,
    xhrSetup: (xhr) => {
      if (state.play) xhr.setRequestHeader('Authorization', 'Bearer ' + state.play.token);
    },
  });
  state.hls = hls;
  state.mode = mode;
  state.track = track;
  hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
    const only = mode === 'preview' ? 'preview' : null;
    state.levels = hls.levels.map((l) => levelName(l, only));
    const q = $('quality');
    q.replaceChildren(el('option', { value: '-1' }, 'auto'));
    hls.levels.forEach((l, i) => q.append(el('option', { value: String(i) }, levelName(l, only))));
    q.disabled = hls.levels.length < 2;
    audio.play().catch((e) => fail('media', `Playback did not start: ${e.message}`));
  });
  hls.on(window.Hls.Events.LEVEL_SWITCHED, (_, d) => {
    state.level = d.level;
  });
  hls.on(window.Hls.Events.ERROR, onHlsError);
  hls.loadSource(url);
  hls.attachMedia(audio);
  $('toggle').disabled = false;
  $('seek').disabled = false;
  const title = state.album.tracks.find((t) => t.number === track);
  $('now-playing').textContent = `${mode === 'preview' ? 'Preview: ' : ''}${title ? title.title : 'track ' + track}`;
  say(mode === 'preview' ? 'Playing a preview.' : 'Playing the album.');
}

// A media playlist (the preview) has no variant attributes: its one level is named by the
// caller, which knows which rendition it asked for.
function levelName(l, fallback) {
  return (l.attrs && l.attrs['STABLE-VARIANT-ID']) || fallback || l.name || `${Math.round(l.bitrate / 1000)} kb/s`;
}

async function onHlsError(_, data) {
  const code = data.response && data.response.code;
  if (code === 401) {
    // A play token lasts an hour: while the session lasts, fetch a fresh one and go on.
    if (!state.retried && state.session && state.session.expiresAt > Date.now()) {
      state.retried = true;
      const at = $('audio').currentTime;
      state.play = null;
      try {
        await playToken(state.album.id);
        const url = state.hls && state.hls.url;
        if (url) {
          const mode = state.mode;
          start(url, mode, state.track, at);
          state.retried = true;
          return;
        }
      } catch (e) {
        report(e);
        stop();
        return;
      }
    }
    stop();
    fail('expired', 'Your session has expired. Sign in again to keep listening.');
    return;
  }
  if (code === 403) {
    stop();
    fail('preview-only', 'Preview only: buy the album to hear every track in full.');
    return;
  }
  if (!data.fatal) {
    state.warnings.push(data.details);
    return;
  }
  if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR) {
    stop();
    fail('network', 'Network error: the music could not be loaded. Check the connection and try again.');
  } else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
    state.mediaErrors.push(data.details);
    if (state.mediaErrors.length <= 1 && state.hls) {
      state.hls.recoverMediaError();
    } else {
      stop();
      fail('media', `This audio cannot be played here (${data.details}).`);
    }
  } else {
    stop();
    fail('other', `Playback stopped (${data.details}).`);
  }
}

function switchQuality() {
  if (!state.hls) return;
  // currentLevel switches at once (the buffer ahead is dropped), so the change is audible now.
  state.hls.currentLevel = Number($('quality').value);
}

function onTime() {
  const audio = $('audio');
  const seek = $('seek');
  const d = isFinite(audio.duration) ? audio.duration : 0;
  seek.max = String(d);
  if (!seek.matches(':active')) seek.value = String(audio.currentTime);
  $('clock').textContent = `${clock(audio.currentTime)} / ${clock(d)}`;
  $('toggle').textContent = audio.paused ? 'Play' : 'Pause';
  if (state.mode === 'full' && state.album) {
    const n = trackAt(audio.currentTime);
    if (n !== state.track) {
      state.track = n;
      const t = state.album.tracks.find((x) => x.number === n);
      $('now-playing').textContent = t ? t.title : `track ${n}`;
    }
    for (const li of document.querySelectorAll('#tracks li')) {
      li.classList.toggle('current', Number(li.dataset.track) === n);
    }
  }
}

// ---------------------------------------------------------------- start-up

async function main() {
  const audio = $('audio');
  audio.addEventListener('timeupdate', onTime);
  audio.addEventListener('play', onTime);
  audio.addEventListener('pause', onTime);
  audio.addEventListener('error', () => {
    const e = audio.error;
    state.mediaErrors.push(e ? `media element error ${e.code}: ${e.message}` : 'media element error');
  });
  $('toggle').addEventListener('click', () => (audio.paused ? audio.play() : audio.pause()));
  $('seek').addEventListener('change', () => {
    audio.currentTime = Number($('seek').value);
  });
  $('quality').addEventListener('change', switchQuality);
  $('signin').addEventListener('click', signIn);
  $('buy').addEventListener('click', buy);
  $('play-album').addEventListener('click', () => playFull(1));
  $('home').addEventListener('click', (e) => {
    e.preventDefault();
    $('album').hidden = true;
    location.hash = '';
  });
  window.addEventListener('offline', () => fail('network', 'You are offline: playback resumes when the network is back.'));

  try {
    await api('GET', '/v1/dev');
    state.demoStore = true;
    $('store').hidden = false;
  } catch (_) {
    state.demoStore = false; // production: no demo store, the endpoints are absent
  }
  loadSession();
  showSession();
  await Promise.all([loadCatalog(), loadChart()]);
  if (state.session) {
    try {
      await refreshOwned();
    } catch (e) {
      report(e);
    }
  }
  const m = location.hash.match(/^#\/album\/(.+)$/);
  if (m) await openAlbum(decodeURIComponent(m[1]));
  document.body.dataset.ready = 'true';
}

main();

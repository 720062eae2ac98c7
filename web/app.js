// encore web player: a grid of covers, the album page (cover, launch countdown, buy form with
// copies and gifts, nameplate badge, buyer-only extras), demo store (dev only), HLS playback
// through hls.js (MSE) with loudness levelling (track or album gain, never clipping) and
// synced lyrics, the sales chart with movement, fan clubs. No framework and no build step: the file is served as it is.
'use strict';

const $ = (id) => document.getElementById(id);

// Everything the page knows, in one place; exposed as `window.encore` so the browser test
// (tests/web.rs) and a curious developer can read the player's state.
const state = {
  demoStore: false,
  session: null, // {user, token, expiresAt (ms)}: the account token
  play: null, // {album, token, expiresAt (ms), albums}: the play token for `album`
  album: null, // GET /v1/albums/{id}
  albums: [], // GET /v1/albums: the catalog grid
  onSale: true, // whether the open album is on sale now (its launch countdown ran out)
  countdown: null, // the countdown's interval timer
  extrasShown: [], // ids of the extras shown in the gallery (images, for an owner)
  extrasFor: null, // the album whose extras were opened (or are being opened) for its owner
  owned: new Map(), // album id -> the user's library entry (nameplate)
  clubs: new Map(), // artist id -> the id of the user's club of that artist (from the writes)
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
  gainMode: 'off', // 'off' | 'track' | 'album': the levelling setting (localStorage)
  gain: 1, // the linear gain applied now
  lyrics: null, // {album, track, synced, lines: [{t_ms, text}]} of the track playing
  lyricLine: -1, // index of the highlighted line
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
    state.clubs = new Map();
    saveSession();
    showSession();
    await refreshOwned();
    loadClubChart(); // its join buttons and form are for a signed-in fan
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
  if (!state.session) {
    renderBadges();
    return;
  }
  const lib = await api('GET', `/v1/users/${segment(state.session.user)}/albums`, {
    token: state.session.token,
  });
  for (const a of lib.albums) state.owned.set(a.album, a);
  renderBadges();
  renderOwnership();
  loadGifts();
}

// The nameplates as badges: "No. 1,024 buyer of First Light · 12 copies", the club, the giver.
function renderBadges() {
  const ul = $('badges');
  ul.replaceChildren();
  $('library').hidden = !state.session;
  for (const a of state.owned.values()) {
    const li = el('li');
    const badge = el('button', { class: 'badge', 'data-album': a.album }, a.nameplate);
    badge.addEventListener('click', () => openAlbum(a.album));
    li.append(badge);
    const notes = [];
    if (a.club && a.club.name) notes.push(`club ${a.club.name}`);
    if (a.gift_from) notes.push(`a gift from ${a.gift_from}`);
    if (notes.length) li.append(el('span', { class: 'hint' }, ' ' + notes.join(' · ')));
    ul.append(li);
  }
  if (state.session && state.owned.size === 0) ul.append(el('li', { class: 'hint' }, 'No albums yet: your first purchase gets a numbered nameplate.'));
}

// The nameplate (its text names the copies) with the club and the giver, when there are.
function nameplateText(a) {
  const notes = [a.nameplate];
  if (a.club && a.club.name) notes.push(`club ${a.club.name}`);
  if (a.gift_from) notes.push(`a gift from ${a.gift_from}`);
  return notes.join(' · ');
}

// Gifts received, each declinable within its window (routes of the ledger; absent on an older
// server, where the list stays hidden).
async function loadGifts() {
  if (!state.session) return;
  let g;
  try {
    g = await api('GET', `/v1/users/${segment(state.session.user)}/gifts`, { token: state.session.token });
  } catch (_) {
    $('gifts-title').hidden = true;
    return;
  }
  const ul = $('gifts');
  ul.replaceChildren();
  const received = (g && g.received) || [];
  $('gifts-title').hidden = received.length === 0;
  for (const r of received) {
    const li = el('li', { 'data-order': r.order_id || '', 'data-album': r.album });
    const copies = r.quantity > 1 ? ` · ${r.quantity} copies` : '';
    li.append(el('span', {}, `${r.title || r.album}${copies}${r.from ? ' from ' + r.from : ''}`));
    // Declinable while not refunded and inside its window (`decline_until`, RFC 3339).
    const until = r.decline_until ? Date.parse(r.decline_until) : NaN;
    if (r.refunded_at) {
      li.classList.add('declined');
      li.append(el('span', { class: 'hint' }, ' declined'));
    } else if (r.order_id && isFinite(until) && until > Date.now()) {
      const b = el('button', { class: 'decline' }, 'Decline');
      b.title = `until ${new Date(until).toLocaleString()}`;
      b.addEventListener('click', () => declineGift(r.order_id));
      li.append(b);
    }
    ul.append(li);
  }
}

// One path segment. ':' and '@' stay as they are (both allowed in a segment, RFC 3986):
// the server matches user, order and club ids (`fan@example`, `dev:fan:album:gift:fan-2`)
// without percent-decoding them.
function segment(s) {
  return encodeURIComponent(s).replace(/%3A/gi, ':').replace(/%40/g, '@');
}

async function declineGift(order) {
  try {
    const d = await api('POST', `/v1/gifts/${segment(order)}/decline`, { token: state.session.token });
    state.play = null;
    await refreshOwned();
    // A declined gift is refunded: it leaves the sales chart and the giver's club count.
    loadChart();
    loadClubChart();
    say(d.still_owned ? 'Gift declined: the giver is refunded (you still own the album).' : 'Gift declined: the giver is refunded.');
  } catch (e) {
    report(e);
  }
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

// Milliseconds until an album goes on sale (0 when it is on sale now or has no launch time).
function untilOnSale(a) {
  const at = a && a.on_sale_at ? Date.parse(a.on_sale_at) : NaN;
  return isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

function countdownText(ms) {
  const s = Math.ceil(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const two = (n) => (n < 10 ? '0' : '') + n;
  return `On sale in ${d > 0 ? d + 'd ' : ''}${two(h)}:${two(m)}:${two(r)}`;
}

// Ticks the launch countdown once a second; at zero the buy button appears.
function tickCountdown() {
  const a = state.album;
  const left = untilOnSale(a);
  state.onSale = left === 0;
  $('countdown').hidden = state.onSale;
  if (!state.onSale) $('countdown').textContent = countdownText(left);
  renderOwnership();
  if (state.onSale && state.countdown) {
    clearInterval(state.countdown);
    state.countdown = null;
  }
}

async function buy(ev) {
  if (ev) ev.preventDefault();
  if (!state.album || !(await ensureSession())) return;
  const body = { user: state.session.user, album: state.album.id };
  // Only what differs from a plain purchase is sent, so a server without copies and gifts
  // still takes the plain one.
  const quantity = Math.max(1, Math.min(99, Math.floor(Number($('quantity').value) || 1)));
  if (quantity > 1) body.quantity = quantity;
  const giftTo = $('gift-to').value.trim();
  if (giftTo) {
    body.gift_to = giftTo;
    body.gift_from_visible = $('gift-visible').checked;
  }
  try {
    const receipt = await api('POST', '/v1/dev/purchases', { body });
    state.play = null; // the next play token must name the album
    // The form starts over: a repeat of the same order with other fields is a conflict.
    $('quantity').value = '1';
    $('gift-to').value = '';
    $('gift-visible').checked = false;
    await refreshOwned();
    await loadChart();
    loadClubChart();
    const copies = quantity > 1 ? ` (${quantity} copies)` : '';
    say(giftTo
      ? `Sent ${state.album.title}${copies} to ${giftTo} as a gift.`
      : `Bought ${state.album.title}${copies}: you are buyer No. ${receipt.buyer_number}.`);
    state.error = null;
    state.errorKind = null;
  } catch (e) {
    const type = (e.problem && e.problem.type) || '';
    if (type.endsWith(':not-on-sale')) {
      fail('other', `Not on sale yet: it opens ${new Date(e.problem.on_sale_at).toLocaleString()}.`);
    } else {
      report(e);
    }
  }
}

// ---------------------------------------------------------------- catalog, album, chart

async function loadCatalog() {
  const grid = $('albums');
  try {
    const data = await api('GET', '/v1/albums');
    state.albums = data.albums;
    grid.replaceChildren();
    for (const a of data.albums) {
      const card = el('button', { 'data-album': a.id, class: 'album-link card' });
      const img = el('img', { src: a.cover || NO_COVER, alt: '', loading: 'lazy' });
      card.append(img, el('span', { class: 'title' }, a.title), el('span', { class: 'meta' }, `${a.artist || 'unknown artist'} · ${money(a.price, a.currency)}`));
      if (untilOnSale(a) > 0) card.append(el('span', { class: 'ribbon' }, 'coming soon'));
      card.addEventListener('click', () => openAlbum(a.id));
      grid.append(card);
    }
    if (data.albums.length === 0) grid.append(el('p', { class: 'hint' }, 'No albums yet.'));
  } catch (e) {
    report(e);
  }
}

async function openAlbum(id) {
  try {
    const a = await api('GET', `/v1/albums/${encodeURIComponent(id)}`);
    state.album = a;
    state.extrasShown = [];
    state.extrasFor = null;
    if (!state.lyrics || state.lyrics.album !== a.id) $('lyrics-box').hidden = true;
    // The album is the page now; the encore link at the top goes back to the covers.
    $('catalog').hidden = true;
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
    renderExtrasList();
    applyGain(); // the album's gain is known now, before anything plays
    if (state.countdown) clearInterval(state.countdown);
    state.countdown = untilOnSale(a) > 0 ? setInterval(tickCountdown, 1000) : null;
    tickCountdown();
    location.hash = '#/album/' + encodeURIComponent(id);
    window.scrollTo(0, 0);
    loadClubChart();
  } catch (e) {
    report(e);
  }
}

function renderOwnership() {
  const a = state.album;
  if (!a) return;
  const mine = state.owned.get(a.id);
  $('nameplate').hidden = !mine;
  $('nameplate').textContent = mine ? nameplateText(mine) : '';
  // Before the launch the form is not there at all: the countdown stands in its place.
  $('buy-form').hidden = !state.onSale || !state.demoStore;
  const gift = $('gift-to').value.trim() !== '';
  $('buy').disabled = !state.onSale || !state.demoStore || (!!mine && !gift && Number($('quantity').value) <= 1);
  $('buy').textContent = gift ? 'Send as a gift' : `Buy for ${money(a.price, a.currency)}`;
  $('play-album').disabled = !mine;
  for (const b of document.querySelectorAll('#tracks button.play')) b.disabled = !mine;
  showExtras(!!mine);
}

// ---------------------------------------------------------------- extras

function size(bytes) {
  if (bytes >= 1048576) return `${(bytes / 1048576).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

function kindOf(type) {
  if (type.startsWith('image/')) return 'photo';
  if (type === 'application/pdf') return 'letter';
  if (type.startsWith('video/')) return 'video';
  if (type.startsWith('audio/')) return 'message';
  return 'file';
}

// The list is public (the catalog says what buyers get); the bytes are for owners only.
function renderExtrasList() {
  const extras = (state.album && state.album.extras) || [];
  $('extras').hidden = extras.length === 0;
  const ul = $('extras-list');
  ul.replaceChildren();
  $('extras-gallery').replaceChildren();
  for (const x of extras) {
    const li = el('li', { 'data-extra': x.id, class: 'locked' });
    li.append(el('span', {}, `${x.title} · ${kindOf(x.type)}, ${size(x.size)}`));
    ul.append(li);
  }
}

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

// Fetches one extra with the play token (never in a URL) and returns it as a Blob.
async function fetchExtra(x) {
  const token = await playToken(state.album.id);
  let resp;
  try {
    resp = await fetch(x.url, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { title: 'network error', detail: String(e) });
  }
  if (!resp.ok) {
    let problem = null;
    try {
      problem = await resp.json();
    } catch (_) {
      problem = null;
    }
    throw new ApiError(resp.status, problem);
  }
  return resp.blob();
}

// For an owner: images in the gallery (as data: URLs, which the CSP's img-src allows), the
// rest as buttons that open the file. For anyone else: the locked list only.
async function showExtras(owned) {
  const a = state.album;
  const extras = (a && a.extras) || [];
  const gallery = $('extras-gallery');
  $('extras-hint').textContent = owned ? '' : 'for buyers: buy the album to open them';
  if (!owned) {
    if (state.extrasFor) renderExtrasList();
    state.extrasShown = [];
    state.extrasFor = null;
    return;
  }
  if (!a || state.extrasFor === a.id) return;
  state.extrasFor = a.id;
  try {
    await ensureSession();
    for (const x of extras) {
      const li = document.querySelector(`#extras-list li[data-extra="${x.id}"]`);
      if (li) li.classList.remove('locked');
      if (x.type.startsWith('image/')) {
        const url = await readAsDataUrl(await fetchExtra(x));
        if (state.album !== a) return;
        const fig = el('figure', { 'data-extra': x.id });
        fig.append(el('img', { src: url, alt: x.title }), el('figcaption', {}, x.title));
        gallery.append(fig);
        state.extrasShown.push(x.id);
      } else if (li) {
        const b = el('button', { class: 'open-extra' }, 'Open');
        b.addEventListener('click', async () => {
          try {
            window.open(URL.createObjectURL(await fetchExtra(x)), '_blank', 'noopener');
          } catch (e) {
            report(e);
          }
        });
        li.append(b);
      }
    }
  } catch (e) {
    state.extrasFor = null;
    report(e);
  }
}

// ---------------------------------------------------------------- charts and clubs

// The movement arrow: against the rank an hour earlier (`previous_rank`; null = new entry).
function movement(row) {
  if (!('previous_rank' in row)) return el('span', { class: 'move' }, '');
  if (row.previous_rank === null) return el('span', { class: 'move new' }, 'new');
  const d = row.previous_rank - row.rank;
  if (d > 0) return el('span', { class: 'move up', title: `up ${d}` }, `▲${d}`);
  if (d < 0) return el('span', { class: 'move down', title: `down ${-d}` }, `▼${-d}`);
  return el('span', { class: 'move same' }, '–');
}

async function loadChart() {
  try {
    // The chart may be cached for 10 s (max-age): revalidate, so a purchase shows at once.
    const c = await api('GET', '/v1/charts/albums?window=all', { cache: 'no-cache' });
    const body = $('chart').tBodies[0];
    body.replaceChildren();
    for (const row of c.albums) {
      const tr = el('tr', { 'data-album': row.album });
      const thumb = el('td', { class: 'thumb' });
      thumb.append(el('img', { src: `/v1/albums/${encodeURIComponent(row.album)}/cover`, alt: '', loading: 'lazy' }));
      thumb.firstChild.addEventListener('error', (e) => {
        e.target.src = NO_COVER;
      });
      const move = el('td');
      move.append(movement(row));
      const buyers = row.buyers !== undefined ? `${row.buyers} buyers` : '';
      tr.append(el('td', {}, String(row.rank)), move, thumb, el('td', {}, row.title), el('td', {}, row.artist || ''), el('td', { title: buyers }, String(row.units)));
      tr.addEventListener('click', () => openAlbum(row.album));
      body.append(tr);
    }
  } catch (e) {
    report(e);
  }
}

// The club chart of the open album's artist. A server without clubs (404) hides the box.
async function loadClubChart() {
  const a = state.album;
  const box = $('clubs-box');
  if (!a || !a.artist_id) {
    box.hidden = true;
    return;
  }
  const win = $('club-window').value;
  let c;
  try {
    c = await api('GET', `/v1/charts/clubs?artist_id=${encodeURIComponent(a.artist_id)}&window=${win}`, { cache: 'no-cache' });
  } catch (e) {
    box.hidden = e.status === 404 || e.status === 0;
    if (!box.hidden) $('clubs-note').textContent = e.message;
    return;
  }
  box.hidden = false;
  $('clubs-artist').textContent = a.artist || a.artist_id;
  const mine = state.owned.get(a.id);
  const known = state.clubs.has(a.artist_id) ? state.clubs.get(a.artist_id) : undefined;
  const myClub = known !== undefined ? known : mine && mine.club ? mine.club.id : null;
  const body = $('club-chart').tBodies[0];
  body.replaceChildren();
  for (const row of c.clubs) {
    const tr = el('tr', { 'data-club': row.id, class: row.id === myClub ? 'mine' : '' });
    const act = el('td');
    if (state.session) {
      const b = el('button', {}, row.id === myClub ? 'Leave' : 'Join');
      b.addEventListener('click', () => clubAction(row.id, row.id === myClub ? 'leave' : 'join'));
      act.append(b);
    }
    tr.append(el('td', {}, String(row.rank)), el('td', {}, row.name), el('td', {}, String(row.members)), el('td', {}, String(row.units)), act);
    body.append(tr);
  }
  $('clubs-note').textContent = c.clubs.length ? '' : 'No clubs yet: start the first one.';
  $('club-form').hidden = !state.session;
}

async function clubAction(id, action) {
  try {
    const m = await api('POST', `/v1/clubs/${segment(id)}/${action}`, { token: state.session.token });
    state.clubs.set(m.artist_id, m.member ? m.id : null);
    await refreshOwned();
    await loadClubChart();
  } catch (e) {
    report(e);
  }
}

async function createClub(ev) {
  ev.preventDefault();
  const name = $('club-name').value.trim();
  if (!state.album || !name || !(await ensureSession())) return;
  try {
    const m = await api('POST', '/v1/clubs', { token: state.session.token, body: { artist_id: state.album.artist_id, name } });
    state.clubs.set(m.artist_id, m.id);
    $('club-name').value = '';
    await refreshOwned();
    await loadClubChart();
    say(`You started the club ${name}.`);
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
  ensureGraph();
  if (!state.lyrics || state.lyrics.track !== track || state.lyrics.album !== state.album.id) loadLyrics(track);
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

// ---------------------------------------------------------------- levelling and lyrics

const GAIN_KEY = 'encore.gainMode';
let graph = null; // {ctx, gain}: <audio> -> GainNode -> speakers, made on first playback

// Web Audio takes over the element's output once a source is made from it, so the graph is
// made only when playback starts (a click: browsers let an AudioContext run then).
function ensureGraph() {
  if (!graph) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    const ctx = new Ctx();
    const gain = ctx.createGain();
    ctx.createMediaElementSource($('audio')).connect(gain).connect(ctx.destination);
    graph = { ctx, gain };
  }
  if (graph.ctx.state === 'suspended') graph.ctx.resume().catch(() => {});
  applyGain();
}

// The gain for track n under the setting: ReplayGain's gain (to -18 LUFS), capped so that
// the true peak times the gain stays at or under full scale (never clipping).
function gainFor(n) {
  const a = state.album;
  if (!a || state.gainMode === 'off') return 1;
  const t = a.tracks.find((x) => x.number === n);
  const l = state.gainMode === 'album' ? a.loudness : t && t.loudness;
  if (!l) return 1;
  const g = Math.pow(10, l.gain_db / 20);
  return l.true_peak > 0 ? Math.min(g, 1 / l.true_peak) : g;
}

function applyGain() {
  state.gain = gainFor(state.track);
  if (graph) graph.gain.gain.value = state.gain;
}

function setGainMode(mode) {
  state.gainMode = ['off', 'track', 'album'].includes(mode) ? mode : 'off';
  $('gain-mode').value = state.gainMode;
  try {
    localStorage.setItem(GAIN_KEY, state.gainMode);
  } catch (_) {
    // Storage refused (private mode): the setting lasts this page only.
  }
  applyGain();
}

// Loads the lyrics of track n (public catalog says which tracks have some; the text needs a
// play token, like the preview).
async function loadLyrics(n) {
  const box = $('lyrics-box');
  const a = state.album;
  const t = a && a.tracks.find((x) => x.number === n);
  state.lyrics = null;
  state.lyricLine = -1;
  $('lyrics').replaceChildren();
  if (!t || !t.lyrics) {
    box.hidden = true;
    return;
  }
  try {
    const token = await playToken(a.id);
    const resp = await fetch(t.lyrics.url, { headers: { Authorization: 'Bearer ' + token } });
    if (!resp.ok) throw new ApiError(resp.status, null);
    const lines = (await resp.text()).split('\n').filter((l) => l).map((l) => JSON.parse(l));
    if (state.album !== a || state.track !== n) return; // the player moved on meanwhile
    state.lyrics = { album: a.id, track: n, synced: t.lyrics.synced, lines };
    const ol = $('lyrics');
    lines.forEach((l, i) => ol.append(el('li', { 'data-line': i }, l.text || '♪')));
    $('lyrics-hint').textContent = t.lyrics.synced ? '' : '(not synced)';
    box.hidden = false;
    showLyricLine();
  } catch (e) {
    box.hidden = true;
  }
}

// Seconds into the track being played: the album timeline less the track's start, or the
// preview clip's time plus where the clip starts in the track.
function trackTime() {
  const at = $('audio').currentTime;
  const t = state.album && state.album.tracks.find((x) => x.number === state.track);
  if (state.mode === 'full') return at - trackOffset(state.track);
  if (state.mode === 'preview' && t && t.preview) return at + t.preview.start_seconds;
  return at;
}

function showLyricLine() {
  const l = state.lyrics;
  if (!l || !l.synced || l.track !== state.track) return;
  const ms = trackTime() * 1000;
  let line = -1;
  l.lines.forEach((x, i) => {
    if (x.t_ms !== null && x.t_ms <= ms) line = i;
  });
  if (line === state.lyricLine) return;
  state.lyricLine = line;
  for (const li of document.querySelectorAll('#lyrics li')) {
    const on = Number(li.dataset.line) === line;
    li.classList.toggle('current', on);
    if (on) li.scrollIntoView({ block: 'nearest' });
  }
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
      applyGain();
      loadLyrics(n);
    }
    for (const li of document.querySelectorAll('#tracks li')) {
      li.classList.toggle('current', Number(li.dataset.track) === n);
    }
  }
  showLyricLine();
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
  let saved = null;
  try {
    saved = localStorage.getItem(GAIN_KEY);
  } catch (_) {
    saved = null;
  }
  // Album gain by default: the page plays albums, whose quiet and loud tracks should stay so.
  setGainMode(saved || 'album');
  $('gain-mode').addEventListener('change', () => setGainMode($('gain-mode').value));
  $('signin').addEventListener('click', signIn);
  $('buy-form').addEventListener('submit', buy);
  $('gift-to').addEventListener('input', renderOwnership);
  $('quantity').addEventListener('input', renderOwnership);
  $('club-window').addEventListener('change', loadClubChart);
  $('club-form').addEventListener('submit', createClub);
  $('play-album').addEventListener('click', () => playFull(1));
  $('home').addEventListener('click', (e) => {
    e.preventDefault();
    $('album').hidden = true;
    $('catalog').hidden = false;
    if (state.countdown) clearInterval(state.countdown);
    state.countdown = null;
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

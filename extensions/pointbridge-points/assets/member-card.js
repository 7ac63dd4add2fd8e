/* Pointbridge member card: the member's code as CODE128 + QR (drawn by the app), full screen on
   tap, black on white, the code in text below. A web page cannot raise the screen's brightness,
   so the card asks the shopper to; it keeps the screen awake while shown where the browser allows. */
(function () {
'use strict';
function setup(card) {
  var open = card.querySelector('[data-pb-card-open]'), box = card.querySelector('[data-pb-card]');
  if (!open || !box) return;
  var proxy = (card.getAttribute('data-proxy') || '/apps/points').replace(/\/$/, '');
  var error = card.querySelector('[data-pb-card-error]'), lock = null;
  open.hidden = false;
  function close() {
    if (box.hidden) return;
    box.hidden = true;
    if (document.fullscreenElement && document.exitFullscreen) document.exitFullscreen().catch(function () {});
    if (lock) { lock.release().catch(function () {}); lock = null; }
    open.focus();
  }
  function show(c) {
    box.querySelector('[data-pb-card-barcode]').src = c.barcode.data_uri;
    box.querySelector('[data-pb-card-qr]').src = c.qr.data_uri;
    box.querySelector('[data-pb-card-code]').textContent = c.member.code;
    box.hidden = false;
    box.focus();
    if (box.requestFullscreen) box.requestFullscreen().catch(function () {});
    if (navigator.wakeLock) navigator.wakeLock.request('screen').then(function (l) { lock = l; }, function () {});
  }
  open.addEventListener('click', function () {
    error.hidden = true;
    fetch(proxy + '/member-card', { headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().then(function (b) { if (!r.ok) throw b; show(b); });
    }).catch(function () { error.hidden = false; });
  });
  box.addEventListener('click', close);
  box.addEventListener('keydown', function (e) { if (e.key === 'Escape' || e.key === 'Enter' || e.key === ' ') close(); });
  document.addEventListener('fullscreenchange', function () { if (!document.fullscreenElement && !box.hidden) close(); });
}
function start() { Array.prototype.forEach.call(document.querySelectorAll('[data-pb-points]'), setup); }
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();

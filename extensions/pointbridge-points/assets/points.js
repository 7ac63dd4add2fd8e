/* Pointbridge points block. No dependencies; talks only to the app proxy (same origin). */
(function () {
'use strict';
function fill(text, vars) {
  return String(text).replace(/\{(\w+)\}/g, function (m, k) { return vars[k] == null ? '' : vars[k]; });
}
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}
function uuid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return 'k' + Date.now() + Math.random().toString(36).slice(2);
}

function Block(card) {
  this.card = card;
  this.proxy = (card.getAttribute('data-proxy') || '/apps/points').replace(/\/$/, '');
  this.locale = (card.getAttribute('data-locale') || 'en').toLowerCase().indexOf('ja') === 0 ? 'ja' : 'en';
  this.s = JSON.parse(card.querySelector('[data-pb-strings]').textContent);
  var tag = this.locale === 'ja' ? 'ja-JP' : 'en-US';
  this.num = new Intl.NumberFormat(tag);
  this.yen = new Intl.NumberFormat(tag, { style: 'currency', currency: 'JPY' });
  this.day = new Intl.DateTimeFormat(tag, { year: 'numeric', month: 'long', day: 'numeric', timeZone: 'UTC' });
  this.time = new Intl.DateTimeFormat(tag, { dateStyle: 'medium', timeStyle: 'short' });
  this.key = null; /* idempotency key: kept for retries until the server gives a definite answer */
  var self = this;
  card.querySelector('[data-pb-reload]').addEventListener('click', function () { self.load(); });
  this.load();
}
var P = Block.prototype;
P.q = function (sel) { return this.card.querySelector(sel); };
P.date = function (iso) {
  if (!iso) return this.s.no_expiry;
  var p = iso.split('-');
  return this.day.format(new Date(Date.UTC(+p[0], +p[1] - 1, +p[2])));
};
P.pts = function (n) { return fill(this.s.points, { count: this.num.format(n) }); };
P.get = function (path, body) { /* body: POST */
  var h = { Accept: 'application/json' };
  if (body) h['Content-Type'] = 'application/json';
  return fetch(this.proxy + path + (path.indexOf('?') < 0 ? '?' : '&') + 'locale=' + this.locale,
    body ? { method: 'POST', headers: h, body: JSON.stringify(body) } : { headers: h }).then(function (r) {
    return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, status: r.status, body: b }; });
  });
};

P.load = function () {
  var self = this;
  this.card.setAttribute('aria-busy', 'true');
  this.q('[data-pb-error]').hidden = true;
  return this.get('/balance').then(function (r) {
    self.card.setAttribute('aria-busy', 'false');
    if (!r.ok) return self.fail(r.body.error || {});
    self.show(r.body);
    self.coupons();
  }, function () { self.card.setAttribute('aria-busy', 'false'); self.fail({}); });
};
P.fail = function (err) {
  var box = this.q('[data-pb-error]'), msg = this.s.unavailable, retry = true, hint = this.s.check_in_store;
  if (err.code === 'not_registered') { msg = this.s.not_registered; retry = false; hint = ''; }
  if (err.code === 'not_logged_in') { msg = this.s.signed_out; retry = false; hint = ''; }
  this.q('[data-pb-error-message]').textContent = msg;
  this.q('[data-pb-error-hint]').textContent = hint;
  this.q('[data-pb-reload]').hidden = !retry;
  this.q('[data-pb-state]').setAttribute('data-pb-state', 'error');
  ['balance', 'expiry', 'rank'].forEach(function (k) { this.q('[data-pb-' + k + ']').textContent = '—'; }, this);
  this.q('[data-pb-history]').textContent = '';
  box.hidden = false;
};
P.show = function (d) {
  var self = this;
  this.data = d;
  this.q('[data-pb-state]').setAttribute('data-pb-state', 'ready');
  this.q('[data-pb-balance]').textContent = this.pts(d.points.balance);
  this.q('[data-pb-expiry]').textContent = this.date(d.points.expires_on);
  this.q('[data-pb-rank]').textContent = d.member.rank_label || '—';
  var stale = this.q('[data-pb-stale]');
  stale.hidden = !d.stale;
  if (d.stale) stale.textContent = fill(this.s.stale, { time: this.time.format(new Date(d.as_of)) });
  var list = this.q('[data-pb-history]');
  list.textContent = '';
  if (!d.history.length) list.appendChild(el('li', 'pb-points__history-item pb-points__muted', this.s.no_history));
  d.history.forEach(function (h) {
    var li = el('li', 'pb-points__history-item');
    li.appendChild(el('span', 'pb-points__history-date', self.date(h.date)));
    li.appendChild(el('span', 'pb-points__history-label', h.label));
    li.appendChild(el('span', 'pb-points__history-points ' + (h.points < 0 ? 'is-minus' : 'is-plus'),
      (h.points < 0 ? '−' : '+') + self.pts(Math.abs(h.points))));
    list.appendChild(li);
  });
  this.form(d);
};

P.form = function (d) {
  var self = this, c = d.conversion, box = this.q('[data-pb-convert]');
  var max = Math.floor(Math.min(d.points.balance, c.remaining_today) / c.unit) * c.unit;
  box.textContent = '';
  box.hidden = false;
  box.appendChild(el('h3', 'pb-points__subheading', this.s.convert_heading));
  var id = this.card.closest('.pb-points').id + '-amount';
  var form = el('form', 'pb-points__form');
  var label = el('label', null, this.s.convert_label);
  label.setAttribute('for', id);
  var input = el('input', 'pb-points__input');
  input.type = 'number'; input.id = id; input.step = c.unit; input.min = c.minimum; input.max = max;
  input.value = max >= c.minimum ? c.minimum : '';
  input.inputMode = 'numeric';
  var preview = el('span', 'pb-points__preview');
  preview.setAttribute('aria-live', 'polite');
  var button = el('button', 'pb-points__button', this.s.convert_button);
  button.type = 'submit';
  button.disabled = max < c.minimum;
  var limits = el('p', 'pb-points__hint', fill(this.s.convert_limits, {
    unit: this.num.format(c.unit), minimum: this.num.format(c.minimum), remaining: this.num.format(c.remaining_today) }));
  var message = el('p', 'pb-points__message');
  message.setAttribute('role', 'alert');
  function update() {
    var n = parseInt(input.value, 10) || 0;
    preview.textContent = fill(self.s.convert_value, { amount: self.yen.format(n * c.yen_per_point) });
    self.key = null; /* a different request deserves a different key */
  }
  input.addEventListener('input', update);
  [label, input, preview, button, limits, message].forEach(function (n) { form.appendChild(n); });
  form.addEventListener('submit', function (ev) { ev.preventDefault(); self.convert(input, button, message); });
  box.appendChild(form);
  if (this.lastResult) box.appendChild(this.lastResult);
  update();
};
P.convert = function (input, button, message) {
  var self = this, points = parseInt(input.value, 10), c = this.data.conversion;
  if (!this.key) this.key = uuid();
  function busy(on) { button.textContent = on ? self.s.processing : self.s.convert_button; button.disabled = input.disabled = on; }
  busy(true);
  message.textContent = '';
  this.get('/conversions', { points: points, idempotency_key: this.key }).then(function (r) {
    busy(false);
    if (r.body.conversion) { self.key = null; self.result(r.body.conversion); return self.load(); }
    var code = (r.body.error || {}).code;
    if (r.status < 500 && code) self.key = null; /* a definite no: the next try is a new request */
    var text = self.s.errors[code] || self.s.errors.generic;
    message.textContent = fill(text, { unit: self.num.format(c.unit), minimum: self.num.format(c.minimum) });
  }, function () {
    busy(false);
    message.textContent = self.s.errors.generic; /* network: keep the key, a retry is the same request */
  });
};
P.result = function (conv) {
  var self = this, box = el('div', 'pb-points__result');
  box.appendChild(el('p', 'pb-points__label', this.s.your_code));
  var code = el('output', 'pb-points__code', conv.code);
  code.tabIndex = -1;
  var copy = el('button', 'pb-points__button pb-points__button--quiet', this.s.copy);
  copy.type = 'button';
  copy.addEventListener('click', function () {
    (navigator.clipboard ? navigator.clipboard.writeText(conv.code) : Promise.reject()).then(function () {
      copy.textContent = self.s.copied;
    }, function () { window.getSelection().selectAllChildren(code); });
  });
  box.appendChild(code); box.appendChild(copy);
  box.appendChild(el('p', 'pb-points__hint', fill(this.s.valid_until, { date: this.date((conv.expires_at || '').slice(0, 10)) })));
  this.q('[data-pb-convert]').appendChild(box);
  this.lastResult = box;
  code.focus();
};
P.coupons = function () {
  var self = this;
  return this.get('/conversions').then(function (r) {
    var box = self.q('[data-pb-coupons]');
    var list = (r.ok && r.body.conversions) || [];
    box.textContent = '';
    box.hidden = !list.length;
    if (!list.length) return;
    box.appendChild(el('h3', 'pb-points__subheading', self.s.coupons));
    var ul = el('ul', 'pb-points__history');
    list.forEach(function (c) {
      var li = el('li', 'pb-points__history-item');
      li.appendChild(el('code', 'pb-points__coupon-code', c.code));
      li.appendChild(el('span', null, self.yen.format(c.amount)));
      var status = (self.s['status_' + c.status] || self.s.status_pending) + (c.order_name ? ' ' + c.order_name : '');
      li.appendChild(el('span', 'pb-points__muted', status + ' · ' + fill(self.s.valid_until, { date: self.date((c.expires_at || '').slice(0, 10)) })));
      if (c.status === 'completed') {
        var b = li.appendChild(el('button', 'pb-points__button pb-points__button--quiet', self.s.hand_back));
        b.type = 'button';
        b.onclick = function () { b.disabled = true; self.get('/conversions/' + c.id + '/return', {}).then(self.load.bind(self)); };
      }
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }, function () {});
};

function start() {
  Array.prototype.forEach.call(document.querySelectorAll('[data-pb-points]'), function (card) {
    if (!card.pbBlock) card.pbBlock = new Block(card);
  });
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
document.addEventListener('shopify:section:load', start);
})();

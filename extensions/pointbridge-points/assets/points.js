/* Pointbridge points block (app proxy only): each state says what it is and what to do. */
(function () {
'use strict';
function fill(text, vars) {
 return String(text).replace(/\{(\w+)\}/g, function (m, k) { return vars[k] == null ? '' : vars[k]; });
}
function add(p, c) { return p.appendChild(c); }
function el(tag, cls, text, to) {
 var e = document.createElement(tag);
 if (cls) e.className = cls.replace(/(^| )(?!is-)(?=\w)/g, '$1pb-points__');
 if (text != null) e.textContent = text;
 return to ? add(to, e) : e;
}
/* Work in short tasks, so none holds up input (TBT). */
function later(f) { setTimeout(f, 0); }
function uuid() { return crypto.randomUUID ? crypto.randomUUID() : 'k' + Date.now() + Math.random(); }
function json(r) {
 return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, status: r.status, body: b }; });
}

function Block(card) {
 this.card = card;
 this.proxy = (card.getAttribute('data-proxy') || '/apps/points').replace(/\/$/, '');
 this.locale = (card.getAttribute('data-locale') || 'en').toLowerCase().indexOf('ja') === 0 ? 'ja' : 'en';
 this.s = JSON.parse(this.q('strings').textContent);
 this.tag = this.locale === 'ja' ? 'ja-JP' : 'en-US';
 this.key = null; /* idempotency key, kept until a definite answer */
 var self = this;
 this.q('reload').onclick = function () { self.load(); };
 this.load();
 later(this.fmt.bind(this));
}
var P = Block.prototype;
P.fmt = function () {
 var t = this.tag;
 if (this.num) return;
 this.num = new Intl.NumberFormat(t);
 this.yen = new Intl.NumberFormat(t, { style: 'currency', currency: 'JPY' });
 this.day = new Intl.DateTimeFormat(t, { year: 'numeric', month: 'long', day: 'numeric', timeZone: 'UTC' });
};
P.q = function (n) { return this.card.querySelector('[data-pb-' + n + ']'); };
P.date = function (iso) {
 if (!iso) return this.s.no_expiry;
 var p = iso.split('-');
 return this.day.format(new Date(Date.UTC(+p[0], +p[1] - 1, +p[2])));
};
P.until = function (c) { return fill(this.s.valid_until, { date: this.date((c.expires_at || '').slice(0, 10)) }); };
P.pts = function (n) { return fill(this.s.points, { count: this.num.format(n) }); };
P.get = function (path, body) { /* with a body: POST */
 var h = { Accept: 'application/json' };
 if (body) h['Content-Type'] = 'application/json';
 return fetch(this.proxy + path + (path.indexOf('?') < 0 ? '?' : '&') + 'locale=' + this.locale,
  body ? { method: 'POST', headers: h, body: JSON.stringify(body) } : { headers: h }).then(json);
};
P.parts = function (shown) {
 ['state', 'activity'].forEach(function (n) { this.q(n).hidden = !shown; }, this);
 if (!shown) { this.q('convert').hidden = true; this.q('coupons').hidden = true; }
};

P.load = function () {
 var self = this, c = this.card;
 c.setAttribute('aria-busy', 'true');
 this.q('error').hidden = true;
 return this.get('/balance').catch(function () { return { body: {} }; }).then(function (r) {
  c.setAttribute('aria-busy', 'false');
  if (!r.ok) return self.fail(r.body.error || {});
  self.show(r.body);
  later(self.coupons.bind(self));
 });
};
P.fail = function (err) {
 var s = this.s, nr = err.code === 'not_registered', out = err.code === 'not_logged_in', h = this.q('error-hint');
 this.q('error-message').textContent = nr ? s.not_registered : out ? s.signed_out : s.unavailable;
 h.textContent = nr ? s.not_registered_hint : out ? '' : s.check_in_store; h.hidden = out;
 this.q('reload').hidden = nr || out;
 this.q('signin').hidden = !out;
 this.q('state').dataset.pbState = nr ? 'not-member' : 'error';
 this.q('stale').hidden = true;
 this.parts(false);
 this.q('error').hidden = false;
};
P.show = function (d) {
 var self = this, list = this.q('history'), stale = this.q('stale');
 this.data = d;
 this.fmt();
 this.parts(true);
 this.q('state').dataset.pbState = d.stale ? 'stale' : 'ready';
 this.q('balance').textContent = this.pts(d.points.balance);
 this.q('expiry').textContent = this.date(d.points.expires_on);
 var rank = this.q('rank');
 rank.textContent = d.member.rank_label || '';
 rank.parentNode.hidden = !d.member.rank_label;
 stale.hidden = !d.stale;
 if (d.stale) stale.textContent = fill(this.s.stale, { time: new Intl.DateTimeFormat(this.tag, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(d.as_of)) });
 list.textContent = '';
 if (!d.history.length) el('li', 'history-item muted', this.s.no_history, list);
 d.history.forEach(function (h) {
  var li = el('li', 'history-item');
  el('span', 'history-date', self.date(h.date), li);
  el('span', 'history-label', h.label, li);
  add(li, el('span', 'history-points ' + (h.points < 0 ? 'is-minus' : 'is-plus'),
   (h.points < 0 ? '−' : '+') + self.pts(Math.abs(h.points))));
  add(list, li);
 });
 later(function () { self.form(d); });
};

P.form = function (d) {
 var self = this, s = this.s, c = d.conversion, box = this.q('convert'), n = this.num;
 var max = Math.floor(Math.min(d.points.balance, c.remaining_today) / c.unit) * c.unit;
 box.textContent = '';
 box.hidden = false;
 el('h3', 'subheading', s.convert_heading, box);
 var why = d.stale ? s.convert_paused
  : d.points.balance < c.minimum ? fill(s.below_minimum_info, { minimum: n.format(c.minimum), missing: n.format(c.minimum - d.points.balance) })
  : max < c.minimum ? s.limit_reached : '';
 if (why) { el('p', 'hint', why, box); this.append(box); return; }
 var id = this.card.closest('.pb-points').id + '-amount';
 var form = el('form', 'form');
 form.noValidate = true; /* our messages, not the browser's */
 var label = el('label', null, s.convert_label);
 label.setAttribute('for', id);
 var input = el('input', 'input');
 input.type = 'number'; input.id = id; input.step = c.unit; input.min = c.minimum; input.max = max;
 input.value = c.minimum;
 input.inputMode = 'numeric';
 var preview = el('span', 'preview');
 preview.setAttribute('aria-live', 'polite');
 var button = el('button', 'button', s.convert_button);
 button.type = 'submit';
 var limits = el('p', 'hint', fill(s.convert_limits, {
  unit: n.format(c.unit), minimum: n.format(c.minimum), remaining: n.format(c.remaining_today) }));
 var message = el('p', 'message');
 message.setAttribute('role', 'alert');
 function update() {
  var v = parseInt(input.value, 10) || 0;
  preview.textContent = v > 0 ? fill(s.convert_value, { amount: self.yen.format(v * c.yen_per_point) }) : '';
  self.key = null; /* a new request, a new key */
 }
 input.oninput = update;
 [label, input, preview, button, limits, message].forEach(add.bind(null, form));
 form.onsubmit = function (ev) {
  ev.preventDefault();
  var v = parseInt(input.value, 10) || 0, code = v < c.minimum ? 'below_minimum' : v % c.unit ? 'not_multiple_of_unit'
   : v > d.points.balance ? 'insufficient_points' : v > c.remaining_today ? 'daily_limit_exceeded' : '';
  if (code) message.textContent = self.err(code); else self.convert(input, button, message);
 };
 add(box, form);
 this.append(box);
 update();
};
P.append = function (box) { if (this.lastResult) add(box, this.lastResult); };
P.err = function (code) {
 var c = this.data.conversion;
 return fill(this.s.errors[code] || this.s.errors.generic, { unit: this.num.format(c.unit), minimum: this.num.format(c.minimum) });
};
P.convert = function (input, button, message) {
 var self = this, points = parseInt(input.value, 10);
 if (!this.key) this.key = uuid();
 button.disabled = true; input.disabled = true;
 button.textContent = this.s.processing;
 message.textContent = '';
 function done() { button.textContent = self.s.convert_button; button.disabled = false; input.disabled = false; }
 this.get('/conversions', { points: points, idempotency_key: this.key }).then(function (r) {
  done();
  var v = r.body.conversion, code = (r.body.error || {}).code;
  if (v || (r.status < 500 && code)) self.key = null;
  if (v) { self.result(v); return self.load(); }
  message.textContent = self.err(code);
 }, function () {
  done();
  message.textContent = self.s.errors.generic; /* network: a retry keeps the key */
 });
};
P.result = function (conv) {
 var self = this, box = el('div', 'result');
 el('p', 'label', this.s.your_code, box);
 var code = el('output', 'code', conv.code);
 code.tabIndex = -1;
 var copy = el('button', 'button button--quiet', this.s.copy);
 copy.type = 'button';
 copy.onclick = function () {
  (navigator.clipboard ? navigator.clipboard.writeText(conv.code) : Promise.reject()).then(function () {
   copy.textContent = self.s.copied;
  }, function () { window.getSelection().selectAllChildren(code); });
 };
 add(box, code); add(box, copy);
 el('p', 'hint', this.until(conv), box);
 add(this.q('convert'), box);
 this.lastResult = box;
 code.focus();
};
P.coupons = function () {
 var self = this, s = this.s;
 return this.get('/conversions').then(function (r) {
  var box = self.q('coupons'), list = (r.ok && r.body.conversions) || [];
  box.textContent = '';
  box.hidden = !list.length;
  if (!list.length) return;
  el('h3', 'subheading', s.coupons, box);
  var ul = el('ul', 'history');
  list.forEach(function (c) {
   var li = el('li', 'history-item');
   el('code', 'coupon-code', c.code, li);
   el('span', null, self.yen.format(c.amount), li);
   var status = (s['status_' + c.status] || s.status_pending) + (c.order_name ? ' ' + c.order_name : '');
   el('span', 'muted', status + ' · ' + self.until(c), li);
   if (c.status === 'completed') {
    var b = el('button', 'button button--quiet', s.hand_back, li);
    b.type = 'button';
    b.onclick = function () { b.disabled = true; self.get('/conversions/' + c.id + '/return', {}).then(self.load.bind(self)); };
   }
   add(ul, li);
  });
  add(box, ul);
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

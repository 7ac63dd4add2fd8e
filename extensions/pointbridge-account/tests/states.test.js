import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { balanceState, checkAmount, conversionState } from '../src/states.js';

const locale = (name) => JSON.parse(readFileSync(new URL(`../locales/${name}`, import.meta.url), 'utf8'));
const LOCALES = { ja: locale('ja.json'), en: locale('en.default.json') };
const say = (lang, key, vars = {}) => LOCALES[lang][key].replace(/\{\{(\w+)\}\}/g, (_, k) => String(vars[k]));

const conversion = { unit: 100, minimum: 100, daily_limit: 10000, remaining_today: 9500, yen_per_point: 1 };
const member = (balance, extra = {}) => ({
  member: { code: '1', rank: null, rank_label: null }, points: { balance, expires_on: null },
  history: [{ date: '2026-11-30', label: 'Store purchase', points: 12 }], conversion, stale: false, ...extra,
});

describe('what the shopper is told', () => {
  it('not a member: says so and what to do, with nothing to retry', () => {
    const s = balanceState({ error: { code: 'not_registered' } });
    expect(s).toMatchObject({ kind: 'not-member', retry: false });
    expect(say('ja', s.message)).toContain('まだ会員登録がない');
    expect(say('ja', s.hint)).toContain('店舗で会員登録');
    expect(say('en', s.hint)).toContain('Register as a member at any of our stores');
  });

  it('signed out: asks to sign in again, no retry button', () => {
    const s = balanceState({ error: { code: 'not_logged_in' } });
    expect(s).toMatchObject({ kind: 'signed-out', retry: false, hint: null });
    expect(say('en', s.message)).toMatch(/Sign in again/);
    expect(say('ja', s.message)).toMatch(/もう一度ログイン/);
  });

  it('POS down: says it is unavailable, where else to look, and offers a retry', () => {
    for (const code of ['pos_unavailable', 'pos_timeout', undefined]) {
      const s = balanceState({ error: { code } });
      expect(s).toMatchObject({ kind: 'pos-down', retry: true, tone: 'critical' });
      expect(say('ja', s.hint)).toContain('店舗でもご確認');
    }
  });

  it('stale: shows the balance with a warning and no conversion form', () => {
    const data = member(1250, { stale: true });
    expect(balanceState({ data })).toMatchObject({ kind: 'stale', message: 'stale' });
    expect(conversionState(data)).toEqual({ canConvert: false, reason: 'convertPaused', vars: {} });
    expect(say('en', 'convertPaused')).toMatch(/try again later/);
  });

  it('nothing to show: a member without history is told so', () => {
    expect(balanceState({ data: member(500, { history: [] }) }).kind).toBe('no-history');
    expect(say('ja', 'noHistory')).toContain('ご利用はありません');
  });

  it('loading and ready', () => {
    expect(balanceState({ loading: true }).kind).toBe('loading');
    expect(balanceState({ data: member(1250) }).kind).toBe('ready');
  });

  it('below the minimum: a sentence with the minimum and what is missing, not a greyed form', () => {
    const s = conversionState(member(80));
    expect(s).toEqual({ canConvert: false, reason: 'belowMinimumInfo', vars: { minimum: 100, missing: 20 } });
    expect(say('en', s.reason, s.vars)).toBe('Points can be turned into a discount from 100 points. You need 20 more.');
    expect(say('ja', s.reason, s.vars)).toBe('100 ポイントからクーポンに交換できます。あと 20 ポイントです。');
  });

  it("today's limit reached: says when it can be done again", () => {
    const s = conversionState(member(1250, { conversion: { ...conversion, remaining_today: 50 } }));
    expect(s.reason).toBe('limitReached');
    expect(say('ja', s.reason)).toContain('明日');
  });

  it('enough points: the form, with its range', () => {
    expect(conversionState(member(1250))).toMatchObject({ canConvert: true, range: { min: 100, step: 100, max: 1200 } });
  });
});

describe('an amount is checked on the page first', () => {
  const data = member(1250);
  it('50 points is "at least 100", not "steps of 100"', () => {
    expect(checkAmount(50, data)).toBe('below_minimum');
    expect(checkAmount(NaN, data)).toBe('below_minimum');
  });
  it('then steps, balance and the daily limit', () => {
    expect(checkAmount(150, data)).toBe('not_multiple_of_unit');
    expect(checkAmount(1300, data)).toBe('insufficient_points');
    expect(checkAmount(1000, member(20000, { conversion: { ...conversion, remaining_today: 900 } })))
      .toBe('daily_limit_exceeded');
    expect(checkAmount(500, data)).toBeNull();
  });
});

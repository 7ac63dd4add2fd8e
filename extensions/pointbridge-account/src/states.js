// The shopper's situation, decided once for every view: what it is, what to say and which controls
// can work. The views only render this; a control that cannot work is not shown at all.
import { limits } from './conversion.js';

export function balanceState({ loading, data, error }) {
  if (error?.code === 'not_registered') {
    return { kind: 'not-member', tone: 'info', message: 'notRegistered', hint: 'notRegisteredHint', retry: false };
  }
  if (error?.code === 'not_logged_in') {
    return { kind: 'signed-out', tone: 'warning', message: 'signedOut', hint: null, retry: false };
  }
  if (error) return { kind: 'pos-down', tone: 'critical', message: 'unavailable', hint: 'checkInStore', retry: true };
  if (!data) return { kind: loading ? 'loading' : 'empty' };
  if (data.stale) return { kind: 'stale', tone: 'warning', message: 'stale', hint: null, retry: false };
  return { kind: data.history.length ? 'ready' : 'no-history' };
}

// The form, or the sentence saying why there is none.
export function conversionState(data) {
  const c = data.conversion;
  const range = limits(data.points.balance, c);
  if (data.stale) return { canConvert: false, reason: 'convertPaused', vars: {} };
  if (data.points.balance < c.minimum) {
    return { canConvert: false, reason: 'belowMinimumInfo',
      vars: { minimum: c.minimum, missing: c.minimum - data.points.balance } };
  }
  if (!range.canConvert) return { canConvert: false, reason: 'limitReached', vars: {} };
  return { canConvert: true, range };
}

// Checked on the page before anything is sent, so 50 points hears "at least 100" (the server's
// order of checks would answer "steps of 100" first).
export function checkAmount(points, data) {
  const c = data.conversion;
  if (!Number.isInteger(points) || points < c.minimum) return 'below_minimum';
  if (points % c.unit) return 'not_multiple_of_unit';
  if (points > data.points.balance) return 'insufficient_points';
  if (points > c.remaining_today) return 'daily_limit_exceeded';
  return null;
}

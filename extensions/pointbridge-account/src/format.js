// Formatting for ja and en: thousands separators, dates as people write them, yen amounts.

export function language(isoCode) {
  return String(isoCode || 'en').toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

const TAG = { ja: 'ja-JP', en: 'en-US' };

export function formatNumber(value, lang) {
  return new Intl.NumberFormat(TAG[lang]).format(value);
}

export function formatPoints(value, lang) {
  const n = formatNumber(Math.abs(value), lang);
  return lang === 'ja' ? `${n} pt` : `${n} pts`;
}

export function formatSignedPoints(value, lang) {
  return (value < 0 ? '−' : '+') + formatPoints(value, lang);
}

export function formatYen(value, lang) {
  return new Intl.NumberFormat(TAG[lang], { style: 'currency', currency: 'JPY' }).format(value);
}

// "2025-12-31" (or an ISO date-time: its calendar date) → 2025年12月31日 / December 31, 2025
export function formatDate(isoDate, lang) {
  if (!isoDate) return null;
  const [y, m, d] = String(isoDate).slice(0, 10).split('-').map(Number);
  return new Intl.DateTimeFormat(TAG[lang], { year: 'numeric', month: 'long', day: 'numeric', timeZone: 'UTC' })
    .format(new Date(Date.UTC(y, m - 1, d)));
}

import { describe, expect, it } from 'vitest';

import { formatDate, formatPoints, formatSignedPoints, formatYen, language } from '../src/format.js';

describe('formatting for Japanese and English shoppers', () => {
  it('writes dates as people do', () => {
    expect(formatDate('2025-12-31', 'ja')).toBe('2025年12月31日');
    expect(formatDate('2025-12-31', 'en')).toBe('December 31, 2025');
    expect(formatDate('2026-12-23T23:59:59+09:00', 'ja')).toBe('2026年12月23日'); // the shop's calendar day
    expect(formatDate(null, 'ja')).toBeNull();
  });

  it('separates thousands and signs movements', () => {
    expect(formatPoints(1250, 'ja')).toBe('1,250 pt');
    expect(formatPoints(1250, 'en')).toBe('1,250 pts');
    expect(formatSignedPoints(-30, 'en')).toBe('−30 pts');
    expect(formatSignedPoints(128, 'ja')).toBe('+128 pt');
    expect(formatYen(12500, 'ja')).toMatch(/^[¥￥]12,500$/);
  });

  it('picks the language from the locale', () => {
    expect(language('ja-JP')).toBe('ja');
    expect(language('en-US')).toBe('en');
    expect(language(undefined)).toBe('en');
  });
});

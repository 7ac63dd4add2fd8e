import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

const load = (name) => JSON.parse(readFileSync(new URL(`../locales/${name}`, import.meta.url), 'utf8'));
const flatten = (o, prefix = '') => Object.entries(o).flatMap(([k, v]) =>
  typeof v === 'object' ? flatten(v, `${prefix}${k}.`) : [`${prefix}${k}`]);

describe('translations', () => {
  it('has every key in both languages', () => {
    expect(flatten(load('ja.json')).sort()).toEqual(flatten(load('en.default.json')).sort());
  });

  it('defines every key the views use', () => {
    const source = ['Points.jsx', 'PointsPage.jsx', 'ProfileBlock.jsx', 'MemberCard.jsx']
      .map((f) => readFileSync(new URL(`../src/${f}`, import.meta.url), 'utf8')).join('\n');
    const used = [...source.matchAll(/\bt\('([\w.]+)'/g)].map((m) => m[1]);
    const keys = new Set(flatten(load('en.default.json')));
    expect(used.filter((k) => !keys.has(k))).toEqual([]);
    for (const code of ['below_minimum', 'not_multiple_of_unit', 'daily_limit_exceeded', 'insufficient_points',
      'conversion_in_progress']) expect(keys.has(`errors.${code}`)).toBe(true);
  });
});

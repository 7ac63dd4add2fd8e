import { describe, expect, it, vi } from 'vitest';

import { createConversionFlow, limits } from '../src/conversion.js';

function keys() {
  let n = 0;
  return () => `key-${++n}`;
}

describe('the conversion form', () => {
  it('shows processing and refuses a second click while the first is in flight', async () => {
    let finish;
    const api = { convert: vi.fn(() => new Promise((resolve) => { finish = resolve; })) };
    const flow = createConversionFlow({ api, newKey: keys() });
    flow.choose(500);
    const first = flow.submit();
    expect(flow.state.status).toBe('processing');
    await flow.submit(); // double click
    expect(api.convert).toHaveBeenCalledTimes(1);
    finish({ ok: true, status: 201, data: { conversion: { code: '70934-AB12CD-500' } } });
    await first;
    expect(flow.state.status).toBe('done');
    expect(flow.state.result.code).toBe('70934-AB12CD-500');
  });

  it('retries with the same key when the answer was lost, so nothing converts twice', async () => {
    const api = { convert: vi.fn()
      .mockResolvedValueOnce({ ok: false, status: 0, error: { code: 'network_error' } })
      .mockResolvedValueOnce({ ok: false, status: 504, error: { code: 'pos_timeout' } })
      .mockResolvedValueOnce({ ok: true, status: 200, data: { conversion: { code: 'C' } } }) };
    const flow = createConversionFlow({ api, newKey: keys() });
    flow.choose(500);
    await flow.submit();
    await flow.submit();
    await flow.submit();
    expect(api.convert.mock.calls.map((c) => c[1])).toEqual(['key-1', 'key-1', 'key-1']);
    expect(flow.state.status).toBe('done');
  });

  it('takes a new key after a definite refusal or a new amount', async () => {
    const api = { convert: vi.fn()
      .mockResolvedValueOnce({ ok: false, status: 422, error: { code: 'insufficient_points' } })
      .mockResolvedValue({ ok: true, status: 201, data: { conversion: { code: 'C' } } }) };
    const flow = createConversionFlow({ api, newKey: keys() });
    flow.choose(500);
    await flow.submit();
    expect(flow.state.error.code).toBe('insufficient_points');
    await flow.submit();
    flow.choose(300);
    await flow.submit();
    expect(api.convert.mock.calls).toEqual([[500, 'key-1'], [500, 'key-2'], [300, 'key-3']]);
  });

  it('offers only what the rules and the balance allow', () => {
    const rules = { unit: 100, minimum: 200, remaining_today: 10000 };
    expect(limits(1250, rules)).toEqual({ min: 200, step: 100, max: 1200, canConvert: true });
    expect(limits(150, rules).canConvert).toBe(false);
    expect(limits(5000, { ...rules, remaining_today: 300 }).max).toBe(300);
  });
});

import { describe, expect, it, vi } from 'vitest';

import { createApi } from '../src/api.js';

function reply(status, body) {
  return Promise.resolve({ ok: status < 400, status, json: () => Promise.resolve(body) });
}

describe('loading data from the app', () => {
  it('sends the session token and the language, and returns the balance', async () => {
    const fetchImpl = vi.fn(() => reply(200, { points: { balance: 1250 } }));
    const api = createApi({ appUrl: 'https://app.example/', getToken: async () => 'tok-1', fetchImpl, locale: 'ja' });
    const answer = await api.balance();
    expect(answer).toEqual({ ok: true, status: 200, data: { points: { balance: 1250 } } });
    const [url, init] = fetchImpl.mock.calls[0];
    expect(url).toBe('https://app.example/customer-account/balance?locale=ja');
    expect(init.headers.Authorization).toBe('Bearer tok-1');
  });

  it('posts conversions as JSON with the idempotency key', async () => {
    const fetchImpl = vi.fn(() => reply(201, { conversion: { code: '70934-AB12CD-500' } }));
    const api = createApi({ appUrl: 'https://app.example', getToken: async () => 't', fetchImpl });
    await api.convert(500, 'key-1');
    const [url, init] = fetchImpl.mock.calls[0];
    expect(url).toBe('https://app.example/customer-account/conversions');
    expect(init.method).toBe('POST');
    expect(init.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(init.body)).toEqual({ points: 500, idempotency_key: 'key-1' });
  });

  it('hands a coupon back with a bodyless POST to its return path', async () => {
    const fetchImpl = vi.fn(() => reply(409, { error: { code: 'coupon_used', message: 'used' } }));
    const api = createApi({ appUrl: 'https://app.example', getToken: async () => 't', fetchImpl });
    expect(await api.handBack('c-1')).toEqual({ ok: false, status: 409, error: { code: 'coupon_used', message: 'used' } });
    const [url, init] = fetchImpl.mock.calls[0];
    expect(url).toBe('https://app.example/customer-account/conversions/c-1/return');
    expect([init.method, init.body]).toEqual(['POST', undefined]);
  });

  it('reads the member card with the session token (images there cannot send it)', async () => {
    const card = { member: { code: '8840734670934' }, barcode: { data_uri: 'data:image/svg+xml;base64,PHN2Zy8+' } };
    const fetchImpl = vi.fn(() => reply(200, card));
    const api = createApi({ appUrl: 'https://app.example', getToken: async () => 'tok-2', fetchImpl });
    expect(await api.memberCard()).toEqual({ ok: true, status: 200, data: card });
    const [url, init] = fetchImpl.mock.calls[0];
    expect(url).toBe('https://app.example/customer-account/member-card');
    expect(init.method).toBe('GET');
    expect(init.headers.Authorization).toBe('Bearer tok-2');
  });

  it('passes the contract error through, and says when no answer came', async () => {
    const failing = createApi({ appUrl: 'https://a', getToken: async () => 't',
      fetchImpl: () => reply(503, { error: { code: 'pos_unavailable', message: 'down' } }) });
    expect(await failing.balance()).toEqual({ ok: false, status: 503, error: { code: 'pos_unavailable', message: 'down' } });
    const offline = createApi({ appUrl: 'https://a', getToken: async () => 't', fetchImpl: () => Promise.reject(new Error('x')) });
    expect(await offline.balance()).toEqual({ ok: false, status: 0, error: { code: 'network_error' } });
  });
});

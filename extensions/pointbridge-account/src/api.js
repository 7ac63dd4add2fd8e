// Talks to the app's /customer-account/* endpoints with the customer-account session token.
// Pure (fetch and the token source are passed in) so it can be tested with the network mocked.

export function createApi({ appUrl, getToken, fetchImpl = fetch, locale = 'en' }) {
  const base = appUrl.replace(/\/$/, '') + '/customer-account';

  async function call(method, path, body) {
    const token = await getToken();
    let response;
    try {
      response = await fetchImpl(`${base}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          Accept: 'application/json',
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch {
      return { ok: false, status: 0, error: { code: 'network_error' } }; // no answer: outcome unknown
    }
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    return response.ok
      ? { ok: true, status: response.status, data }
      : { ok: false, status: response.status, error: data.error || { code: 'http_' + response.status } };
  }

  return {
    balance: () => call('GET', `/balance?locale=${encodeURIComponent(locale)}`),
    conversions: () => call('GET', '/conversions'),
    memberCard: () => call('GET', '/member-card'),
    convert: (points, idempotencyKey) =>
      call('POST', '/conversions', { points, idempotency_key: idempotencyKey }),
    handBack: (conversionId) => call('POST', `/conversions/${encodeURIComponent(conversionId)}/return`),
  };
}

// Views shared by the full page and the profile block. Data and rules come from api.js,
// conversion.js and format.js; these components only render them with Polaris web components.
import { useEffect, useMemo, useState } from 'preact/hooks';

import { createApi } from './api.js';
import { APP_URL } from './app-url.js';
import { createConversionFlow } from './conversion.js';
import { formatDate, formatPoints, formatSignedPoints, formatYen, language } from './format.js';
import { balanceState, checkAmount, conversionState } from './states.js';

export function useShopper() {
  const lang = language(shopify.localization?.language?.value?.isoCode);
  const api = useMemo(
    () => createApi({ appUrl: APP_URL, getToken: () => shopify.sessionToken.get(), locale: lang }),
    [lang],
  );
  const t = (key, vars) => shopify.i18n.translate(key, vars);
  return { lang, api, t };
}

export function useBalance(api) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const load = async () => {
    setState((s) => ({ ...s, loading: true }));
    const answer = await api.balance();
    setState({ loading: false, data: answer.ok ? answer.data : null, error: answer.ok ? null : answer.error });
  };
  useEffect(() => {
    load();
  }, [api]);
  return { ...state, reload: load };
}

export function ErrorBanner({ error, t, onRetry }) {
  const state = balanceState({ error });
  return (
    <s-banner tone={state.tone} heading={t(state.message)}>
      <s-stack gap="base">
        {state.hint && <s-text>{t(state.hint)}</s-text>}
        {state.retry && <s-button onClick={onRetry}>{t('reload')}</s-button>}
      </s-stack>
    </s-banner>
  );
}

export function Summary({ data, lang, t }) {
  return (
    <s-stack gap="small-200">
      <s-heading>{formatPoints(data.points.balance, lang)}</s-heading>
      <s-text>
        {t('expires')}: {formatDate(data.points.expires_on, lang) ?? t('noExpiry')}
      </s-text>
      {data.member.rank_label && (
        <s-text>
          {t('rank')}: {data.member.rank_label}
        </s-text>
      )}
      {data.stale && <s-banner tone="warning">{t('stale')}</s-banner>}
    </s-stack>
  );
}

export function History({ items, lang, t }) {
  if (!items.length) return <s-text>{t('noHistory')}</s-text>;
  return (
    <s-unordered-list>
      {items.map((item, i) => (
        <s-list-item key={i}>
          {formatDate(item.date, lang)} — {item.label}: {formatSignedPoints(item.points, lang)}
        </s-list-item>
      ))}
    </s-unordered-list>
  );
}

export function ConversionForm({ api, data, lang, t, onConverted }) {
  const flow = useMemo(() => createConversionFlow({ api, newKey: () => crypto.randomUUID() }), [api]);
  const [state, setState] = useState(flow.state);
  useEffect(() => flow.subscribe(setState), [flow]);
  const [problem, setProblem] = useState(null);
  const view = conversionState(data);
  useEffect(() => {
    if (view.canConvert && state.points == null) flow.choose(view.range.min);
  }, [view.canConvert]);
  if (!view.canConvert) return <s-paragraph>{t(view.reason, view.vars)}</s-paragraph>;
  const range = view.range;

  const submit = async () => {
    const refused = checkAmount(state.points, data);
    setProblem(refused);
    if (refused) return;
    const done = await flow.submit();
    if (done.status === 'done') onConverted();
  };
  const code = problem || (state.status === 'error' && state.error?.code);
  const errorText = code && t(`errors.${code}`, {
    unit: data.conversion.unit, minimum: data.conversion.minimum,
  });
  return (
    <s-stack gap="base">
      <s-number-field
        label={t('convertLabel')}
        step={range.step}
        min={range.min}
        max={range.max}
        value={state.points ?? ''}
        disabled={state.status === 'processing'}
        onInput={(event) => { setProblem(null); flow.choose(Number(event.currentTarget.value)); }}
      />
      {state.points > 0 && (
        <s-text>{t('convertValue', { amount: formatYen(state.points * data.conversion.yen_per_point, lang) })}</s-text>
      )}
      <s-text tone="neutral">
        {t('convertLimits', { unit: data.conversion.unit, minimum: data.conversion.minimum,
          remaining: data.conversion.remaining_today })}
      </s-text>
      <s-button variant="primary" loading={state.status === 'processing'}
        disabled={state.status === 'processing'} onClick={submit}>
        {state.status === 'processing' ? t('processing') : t('convertButton')}
      </s-button>
      {errorText && (
        <s-banner tone="critical">{errorText.startsWith('errors.') ? t('errors.generic') : errorText}</s-banner>
      )}
      {state.result && <CodeResult conversion={state.result} lang={lang} t={t} />}
    </s-stack>
  );
}

export function CodeResult({ conversion, lang, t }) {
  return (
    <s-section heading={t('yourCode')}>
      <s-stack gap="small-200">
        <s-heading>{conversion.code}</s-heading>
        <s-clipboard-item id="pointbridge-code" text={conversion.code} />
        <s-button commandFor="pointbridge-code">{t('copy')}</s-button>
        <s-text>{t('validUntil', { date: formatDate(conversion.expires_at, lang) })}</s-text>
      </s-stack>
    </s-section>
  );
}

export function Coupons({ api, lang, t, version, onHandedBack }) {
  const [coupons, setCoupons] = useState([]);
  const [busy, setBusy] = useState(null);
  const load = () => api.conversions().then((answer) => setCoupons(answer.ok ? answer.data.conversions : []));
  useEffect(() => { load(); }, [api, version]);
  if (!coupons.length) return null;
  const handBack = (id) => {
    setBusy(id);
    api.handBack(id).then(() => { setBusy(null); load(); if (onHandedBack) onHandedBack(); });
  };
  return (
    <s-section heading={t('coupons')}>
      <s-unordered-list>
        {coupons.map((c) => (
          <s-list-item key={c.id}>
            {c.code || ''} — {formatYen(c.amount, lang)} — {t(`status.${c.status}`)}
            {c.order_name ? ` ${c.order_name}` : ''} —{' '}
            {t('validUntil', { date: formatDate(c.expires_at, lang) })}
            {c.status === 'completed' && (
              <s-button variant="secondary" loading={busy === c.id} onClick={() => handBack(c.id)}>
                {t('handBack')}
              </s-button>
            )}
          </s-list-item>
        ))}
      </s-unordered-list>
    </s-section>
  );
}

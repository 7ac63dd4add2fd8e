// customer-account.page.render: the "Points" page in new customer accounts.
import '@shopify/ui-extensions/preact';
import { render } from 'preact';
import { useState } from 'preact/hooks';

import { MemberCard } from './MemberCard.jsx';
import { ConversionForm, Coupons, ErrorBanner, History, Summary, useBalance, useShopper } from './Points.jsx';

export default async () => {
  render(<PointsPage />, document.body);
};

function PointsPage() {
  const { lang, api, t } = useShopper();
  const balance = useBalance(api);
  const [version, setVersion] = useState(0);
  const converted = () => {
    setVersion((v) => v + 1);
    balance.reload();
  };
  return (
    <s-page heading={t('heading')}>
      <s-section heading={t('balance')}>
        {balance.loading && !balance.data && <s-skeleton-paragraph />}
        {balance.error && <ErrorBanner error={balance.error} t={t} onRetry={balance.reload} />}
        {balance.data && <Summary data={balance.data} lang={lang} t={t} />}
        {balance.data && <MemberCard api={api} t={t} />}
      </s-section>
      {balance.data && (
        <s-section heading={t('convertHeading')}>
          <ConversionForm api={api} data={balance.data} lang={lang} t={t} onConverted={converted} />
        </s-section>
      )}
      {balance.data && (
        <s-section heading={t('history')}>
          <History items={balance.data.history} lang={lang} t={t} />
        </s-section>
      )}
      <Coupons api={api} lang={lang} t={t} version={version} onHandedBack={balance.reload} />
    </s-page>
  );
}

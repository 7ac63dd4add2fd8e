// customer-account.profile.block.render: the balance on the Profile page, linking to the Points page.
import '@shopify/ui-extensions/preact';
import { render } from 'preact';

import { ErrorBanner, Summary, useBalance, useShopper } from './Points.jsx';

const POINTS_PAGE = 'extension:/'; // this extension's full page (customer-account.page.render)

export default async () => {
  render(<ProfileBlock />, document.body);
};

function ProfileBlock() {
  const { lang, api, t } = useShopper();
  const balance = useBalance(api);
  return (
    <s-section heading={t('heading')}>
      {balance.loading && !balance.data && <s-skeleton-paragraph />}
      {balance.error && <ErrorBanner error={balance.error} t={t} onRetry={balance.reload} />}
      {balance.data && <Summary data={balance.data} lang={lang} t={t} />}
      <s-link href={POINTS_PAGE}>{t('openPage')}</s-link>
    </s-section>
  );
}

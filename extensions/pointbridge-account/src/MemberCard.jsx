// The member card the register scans: CODE128 and QR drawn by the app (data URIs: an image here
// cannot send the session token), full screen in a modal, black on white, the code in text below.
// An extension cannot set the screen's brightness, so the card asks the shopper to turn it up.
import { useEffect, useState } from 'preact/hooks';

export function MemberCard({ api, t }) {
  const [card, setCard] = useState(null);
  useEffect(() => {
    api.memberCard().then((answer) => setCard(answer.ok ? answer.data : null));
  }, [api]);
  if (!card) return null;
  const code = card.member.code;
  return (
    <s-stack gap="base">
      <s-button command="--show" commandFor="pointbridge-member-card">{t('memberCard')}</s-button>
      <s-modal id="pointbridge-member-card" heading={t('memberCard')} size="max">
        <s-stack gap="large" alignItems="center">
          <s-image src={card.barcode.data_uri} alt={t('barcodeAlt', { code })} inlineSize="fill" />
          <s-image src={card.qr.data_uri} alt={t('qrAlt', { code })} inlineSize="auto" />
          <s-heading>{code}</s-heading>
          <s-text tone="neutral">{t('memberCardHint')}</s-text>
        </s-stack>
      </s-modal>
    </s-stack>
  );
}

"""The embedded admin's words, in the two languages of the admin (Shopify sends `locale`)."""
from __future__ import annotations

EN = {
    "sections": "Sections", "dashboard": "Dashboard", "setup": "Smaregi connection", "rules": "Point rules",
    "problems": "Failed syncs and conflicts", "conversions": "Conversions", "privacy": "Customer data requests",
    "test_connection": "Test connection", "checking": "Checking…",
    "connect_smaregi": "Connect Smaregi", "opening_smaregi": "Opening Smaregi…",
    "connect_help": "You sign in with your Smaregi account; the contract you sign in to is connected to this store.",
    "connected_contract": "Connected contract (契約ID): {id}",
    "source_sign_in": "Proven by a Smaregi sign-in ({when}).",
    "source_environment": "Set by this app's deployment (SMAREGI_CONTRACT_ID), for a single merchant whose "
                          "stores all use one contract. Connect Smaregi to use your own contract instead.",
    "not_connected": "Not connected yet. Press Connect Smaregi and sign in with your Smaregi account.",
    "shop_currency": "Currency (from Shopify)", "shop_timezone": "Time zone (from Shopify)",
    "connect_done": "Smaregi contract {id} is now connected to your store.",
    "connect_back": "Back to Pointbridge in Shopify admin",
    "connect_refused": "This sign-in link is not valid (expired, already used or not started from this app). "
                       "Nothing was changed. Start again with Connect Smaregi in the app.",
    "connect_denied": "The Smaregi sign-in was cancelled. Nothing was changed.",
    "connect_sign_in_failed": "Smaregi did not confirm the sign-in. Nothing was changed. Please try again.",
    "connect_smaregi_unavailable": "Smaregi did not answer. Nothing was changed. Please try again in a moment.",
    "import": "Import store members", "import_done": "Store members imported: {n}.",
    "import_running": "Importing store members… {n} so far.", "import_not_started": "Store members not imported yet.",
    "yen_per_point": "Yen per point", "points_unit": "Conversion unit (points)", "points_minimum": "Minimum per conversion",
    "points_daily_limit": "Daily limit per customer (points)", "coupon_valid_days": "Coupon valid for (days)",
    "rank_labels": "Rank labels", "rank_help": "One rank per line: Smaregi rank, Japanese label, English label "
                                               "(e.g. gold, ゴールド会員, Gold Member).",
    "placeholder": "Name used when a customer has none", "keep_codes": "Keep store members' own member codes when linking",
    "sync_on": "Send customers to Smaregi", "sync_off_globally": "Sync is switched off for the whole app "
                                                                 "(SMAREGI_SYNC_ENABLED=false); events are kept.",
    "save": "Save", "saved": "Saved.", "fix_errors": "Please fix the fields marked above.",
    "retry_all": "Retry all failed", "retry": "Retry", "customer": "Customer", "state": "State", "reason": "Reason",
    "last_tried": "Last tried", "no_problems": "No failed syncs or conflicts.", "link_to": "Link to {code}",
    "failed": "Failed", "conflict": "Conflict", "synced": "Synced", "pending": "Pending", "paused": "Paused",
    "held": "Held", "held_reason": "A store member has this e-mail address, but the customer has not verified it in Shopify, "
                                   "so the store member was not touched. They are linked once the e-mail is verified, or choose the member to link now.",
    "latency": "Webhook → POS, 24 h (p50 / p95)", "conversions_today": "Conversions today", "needs_review": "Needs review",
    "search": "Search code or customer", "status": "Status", "when": "When", "code": "Code", "points": "Points",
    "status_completed": "Completed", "status_needs_review": "Needs review", "status_failed": "Failed",
    "status_deducting": "In progress", "status_compensating": "Cancelling",
    "was_deducted": "Points were deducted: keep the code", "was_not_deducted": "Not deducted: cancel the code",
    "no_requests": "No data requests.", "request_for": "Customer {id}",
    "err_whole_number": "Enter a whole number.", "err_out_of_range": "Enter a number from {low} to {high}.",
    "err_minimum_not_multiple": "The minimum must be a multiple of the unit ({unit}).",
    "err_limit_below_minimum": "The daily limit cannot be below the minimum.",
    "err_placeholder_length": "Enter 1 to 85 characters (Smaregi requires a name).",
    "err_rank_labels_format": "Each rank (up to 20 characters) needs labels of up to 40 characters in ja and en.",
    "err_on_or_off": "Choose on or off.",
}

JA = {
    "sections": "メニュー", "dashboard": "ダッシュボード", "setup": "スマレジ接続", "rules": "ポイント設定",
    "problems": "同期エラーと重複", "conversions": "クーポン交換", "privacy": "顧客データの開示請求",
    "test_connection": "接続テスト", "checking": "確認中…",
    "connect_smaregi": "スマレジと接続", "opening_smaregi": "スマレジを開いています…",
    "connect_help": "スマレジのアカウントでログインすると、ログインした契約がこのストアに接続されます。",
    "connected_contract": "接続中の契約ID：{id}",
    "source_sign_in": "スマレジへのログインで確認済み（{when}）。",
    "source_environment": "アプリの設定（SMAREGI_CONTRACT_ID）による契約です。1つの事業者のストアがすべて同じ契約を使う"
                          "専用導入向けです。ご自身の契約を使うには「スマレジと接続」を押してください。",
    "not_connected": "まだ接続されていません。「スマレジと接続」を押し、スマレジのアカウントでログインしてください。",
    "shop_currency": "通貨（Shopifyの設定）", "shop_timezone": "タイムゾーン（Shopifyの設定）",
    "connect_done": "スマレジの契約 {id} をストアに接続しました。",
    "connect_back": "Shopify管理画面のPointbridgeに戻る",
    "connect_refused": "このログインのリンクは無効です（期限切れ・使用済み、またはこのアプリから開始されていません）。"
                       "何も変更していません。アプリの「スマレジと接続」からやり直してください。",
    "connect_denied": "スマレジへのログインが取り消されました。何も変更していません。",
    "connect_sign_in_failed": "スマレジでログインを確認できませんでした。何も変更していません。もう一度お試しください。",
    "connect_smaregi_unavailable": "スマレジから応答がありません。何も変更していません。しばらくしてからお試しください。",
    "import": "店舗会員を取り込む", "import_done": "店舗会員を取り込みました：{n} 件",
    "import_running": "店舗会員を取り込み中… {n} 件", "import_not_started": "店舗会員はまだ取り込まれていません。",
    "yen_per_point": "1ポイントあたりの円", "points_unit": "交換単位（ポイント）", "points_minimum": "1回の最低交換ポイント",
    "points_daily_limit": "1日の交換上限（ポイント）", "coupon_valid_days": "クーポンの有効日数",
    "rank_labels": "会員ランクの表示名", "rank_help": "1行に1ランク：スマレジのランク, 日本語名, 英語名（例：gold, ゴールド会員, Gold Member）",
    "placeholder": "名前が未入力のときの表記", "keep_codes": "既存の店舗会員をつなぐとき会員コードを変更しない",
    "sync_on": "顧客をスマレジに送る", "sync_off_globally": "アプリ全体で同期が停止中です（SMAREGI_SYNC_ENABLED=false）。イベントは保存されています。",
    "save": "保存", "saved": "保存しました。", "fix_errors": "上の項目を修正してください。",
    "retry_all": "失敗したものをすべて再試行", "retry": "再試行", "customer": "顧客", "state": "状態", "reason": "理由",
    "last_tried": "最終試行", "no_problems": "同期エラーや重複はありません。", "link_to": "{code} とつなぐ",
    "failed": "失敗", "conflict": "重複", "synced": "同期済み", "pending": "待機中", "paused": "一時停止",
    "held": "保留", "held_reason": "このメールアドレスの店舗会員がいますが、お客様はShopifyでメールアドレスを確認していないため、店舗会員は変更していません。確認されると自動でつながります。今つなぐ場合は会員を選んでください。",
    "latency": "Webhook → POS（24時間、p50 / p95）", "conversions_today": "本日の交換", "needs_review": "要確認",
    "search": "コードまたは顧客で検索", "status": "状態", "when": "日時", "code": "コード", "points": "ポイント",
    "status_completed": "完了", "status_needs_review": "要確認", "status_failed": "失敗",
    "status_deducting": "処理中", "status_compensating": "取り消し中",
    "was_deducted": "減算済み：コードを有効にする", "was_not_deducted": "未減算：コードを取り消す",
    "no_requests": "開示請求はありません。", "request_for": "顧客 {id}",
    "err_whole_number": "整数で入力してください。", "err_out_of_range": "{low}〜{high} の範囲で入力してください。",
    "err_minimum_not_multiple": "最低交換ポイントは交換単位（{unit}）の倍数にしてください。",
    "err_limit_below_minimum": "1日の上限は最低交換ポイント以上にしてください。",
    "err_placeholder_length": "1〜85文字で入力してください（スマレジでは名前が必須です）。",
    "err_rank_labels_format": "ランクは20文字以内、表示名は日本語・英語とも40文字以内で入力してください。",
    "err_on_or_off": "オンかオフを選んでください。",
}


def texts(locale: str | None) -> tuple[str, dict[str, str]]:
    lang = "ja" if (locale or "").lower().startswith("ja") else "en"
    return lang, JA if lang == "ja" else EN

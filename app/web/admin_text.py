"""The embedded admin's words, in the two languages of the admin (Shopify sends `locale`)."""
from __future__ import annotations

EN = {
    "sections": "Sections", "dashboard": "Dashboard", "setup": "Smaregi connection", "rules": "Point rules",
    "problems": "Failed syncs and conflicts", "conversions": "Conversions", "privacy": "Customer data requests",
    "contract": "Smaregi contract ID (契約ID)", "test_connection": "Test connection", "checking": "Checking…",
    "import": "Import store members", "import_done": "Store members imported: {n}.",
    "import_running": "Importing store members… {n} so far.", "import_not_started": "Store members not imported yet.",
    "default_contract": "Leave empty to use the app's default contract ({id}).",
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
    "latency": "Webhook → POS, 24 h (p50 / p95)", "conversions_today": "Conversions today", "needs_review": "Needs review",
    "search": "Search code or customer", "status": "Status", "when": "When", "code": "Code", "points": "Points",
    "status_completed": "Completed", "status_needs_review": "Needs review", "status_failed": "Failed",
    "status_deducting": "In progress", "status_compensating": "Cancelling",
    "was_deducted": "Points were deducted: keep the code", "was_not_deducted": "Not deducted: cancel the code",
    "no_requests": "No data requests.", "request_for": "Customer {id}",
    "err_whole_number": "Enter a whole number.", "err_out_of_range": "Enter a number from {low} to {high}.",
    "err_contract_format": "A Smaregi contract ID has only letters, digits and _ (e.g. sb_abc123).",
    "err_minimum_not_multiple": "The minimum must be a multiple of the unit ({unit}).",
    "err_limit_below_minimum": "The daily limit cannot be below the minimum.",
    "err_placeholder_length": "Enter 1 to 85 characters (Smaregi requires a name).",
    "err_rank_labels_format": "Each rank (up to 20 characters) needs labels of up to 40 characters in ja and en.",
    "err_on_or_off": "Choose on or off.",
    "check_contract_missing": "Enter your Smaregi contract ID (契約ID) first.",
    "check_ok_credentials": "The app signed in to your contract.",
    "check_ok_members": "Members and points can be read.",
    "check_ok_required_fields": "Member fields checked.",
    "check_bad_credentials": "Smaregi refused the app's client ID or secret (SMAREGI_CLIENT_ID / SMAREGI_CLIENT_SECRET).",
    "check_unknown_contract": "Smaregi does not know the contract ID {contract}. Check it in Smaregi's admin (契約ID).",
    "check_plan_or_scope": "Smaregi refused access to members and points: the plan must be Premium Plus, Food Business "
                           "or Retail Business, and the app needs the pos.customers scopes approved.",
    "check_refused": "Smaregi refused the request: {detail} (a scope may not be approved yet).",
    "check_no_answer": "Smaregi did not answer. Try again in a moment.",
    "check_unsupported_fields": "Smaregi requires fields Shopify does not have: {fields}. New online customers cannot "
                                "become members until these are optional (会員必須項目設定).",
    "all_statuses": "All statuses", "open_in_shopify": "Open in Shopify admin", "unknown_customer": "Customer {id}",
    "members_and_failures": "Members and failed syncs", "coupons_and_movements": "Coupons and point movements",
}

JA = {
    "sections": "メニュー", "dashboard": "ダッシュボード", "setup": "スマレジ接続", "rules": "ポイント設定",
    "problems": "同期エラーと重複", "conversions": "クーポン交換", "privacy": "顧客データの開示請求",
    "contract": "スマレジ契約ID", "test_connection": "接続テスト", "checking": "確認中…",
    "import": "店舗会員を取り込む", "import_done": "店舗会員を取り込みました：{n} 件",
    "import_running": "店舗会員を取り込み中… {n} 件", "import_not_started": "店舗会員はまだ取り込まれていません。",
    "default_contract": "空欄の場合はアプリ既定の契約（{id}）を使います。",
    "yen_per_point": "1ポイントあたりの円", "points_unit": "交換単位（ポイント）", "points_minimum": "1回の最低交換ポイント",
    "points_daily_limit": "1日の交換上限（ポイント）", "coupon_valid_days": "クーポンの有効日数",
    "rank_labels": "会員ランクの表示名", "rank_help": "1行に1ランク：スマレジのランク, 日本語名, 英語名（例：gold, ゴールド会員, Gold Member）",
    "placeholder": "名前が未入力のときの表記", "keep_codes": "既存の店舗会員をつなぐとき会員コードを変更しない",
    "sync_on": "顧客をスマレジに送る", "sync_off_globally": "アプリ全体で同期が停止中です（SMAREGI_SYNC_ENABLED=false）。イベントは保存されています。",
    "save": "保存", "saved": "保存しました。", "fix_errors": "上の項目を修正してください。",
    "retry_all": "失敗したものをすべて再試行", "retry": "再試行", "customer": "顧客", "state": "状態", "reason": "理由",
    "last_tried": "最終試行", "no_problems": "同期エラーや重複はありません。", "link_to": "{code} とつなぐ",
    "failed": "失敗", "conflict": "重複", "synced": "同期済み", "pending": "待機中", "paused": "一時停止",
    "latency": "Webhook → POS（24時間、p50 / p95）", "conversions_today": "本日の交換", "needs_review": "要確認",
    "search": "コードまたは顧客で検索", "status": "状態", "when": "日時", "code": "コード", "points": "ポイント",
    "status_completed": "完了", "status_needs_review": "要確認", "status_failed": "失敗",
    "status_deducting": "処理中", "status_compensating": "取り消し中",
    "was_deducted": "減算済み：コードを有効にする", "was_not_deducted": "未減算：コードを取り消す",
    "no_requests": "開示請求はありません。", "request_for": "顧客 {id}",
    "err_whole_number": "整数で入力してください。", "err_out_of_range": "{low}〜{high} の範囲で入力してください。",
    "err_contract_format": "スマレジの契約IDは英数字と _ のみです（例：sb_abc123）。",
    "err_minimum_not_multiple": "最低交換ポイントは交換単位（{unit}）の倍数にしてください。",
    "err_limit_below_minimum": "1日の上限は最低交換ポイント以上にしてください。",
    "err_placeholder_length": "1〜85文字で入力してください（スマレジでは名前が必須です）。",
    "err_rank_labels_format": "ランクは20文字以内、表示名は日本語・英語とも40文字以内で入力してください。",
    "err_on_or_off": "オンかオフを選んでください。",
    "check_contract_missing": "先にスマレジ契約IDを入力してください。",
    "check_ok_credentials": "アプリが契約にログインできました。",
    "check_ok_members": "会員とポイントを読み取れます。",
    "check_ok_required_fields": "会員の必須項目を確認しました。",
    "check_bad_credentials": "スマレジがアプリのクライアントIDまたはシークレットを拒否しました（SMAREGI_CLIENT_ID / SMAREGI_CLIENT_SECRET）。",
    "check_unknown_contract": "契約ID {contract} はスマレジに存在しません。スマレジの管理画面で契約IDをご確認ください。",
    "check_plan_or_scope": "スマレジが会員・ポイントへのアクセスを拒否しました。プレミアムプラス・フードビジネス・リテールビジネスのいずれかの"
                           "プランと、pos.customers スコープの承認が必要です。",
    "check_refused": "スマレジがリクエストを拒否しました：{detail}（スコープが未承認の可能性があります）。",
    "check_no_answer": "スマレジが応答しません。しばらくしてからもう一度お試しください。",
    "check_unsupported_fields": "スマレジで Shopify にない項目が必須になっています：{fields}。会員必須項目設定で任意にするまで、"
                                "オンラインの新規顧客は会員になれません。",
    "all_statuses": "すべての状態", "open_in_shopify": "Shopify 管理画面で開く", "unknown_customer": "顧客 {id}",
    "members_and_failures": "会員と同期エラー", "coupons_and_movements": "クーポンとポイント履歴",
}


def texts(locale: str | None) -> tuple[str, dict[str, str]]:
    lang = "ja" if (locale or "").lower().startswith("ja") else "en"
    return lang, JA if lang == "ja" else EN

"""The admin's words for the customer import section (app/templates/import_section.html), ja/en."""
from __future__ import annotations

EN = {
    "title": "Import existing customers",
    "intro": "Every Shopify customer becomes a Smaregi member once: store members with the same verified "
             "e-mail or the customer's id as member code are linked, the others are created.",
    "start": "Import customers", "cancel": "Cancel import",
    "counted": "Read from Shopify", "linked": "Linked", "created": "Created", "held": "Held for you",
    "failed": "Failed", "time_left": "Time left",
    "state_none": "No import yet.", "state_queued": "Queued: the worker starts it in a moment.",
    "state_running": "Importing…", "state_done": "Import finished.", "state_failed": "Import failed: {reason}",
    "state_cancelled": "Import cancelled.",
    "phase_export": "Shopify is exporting the customers.", "phase_read": "Reading the customers.",
    "phase_match": "Linking and creating members.",
    "held_title": "Held customers (choose their member under “Failed syncs and conflicts”)",
    "minutes": "{n} min", "seconds": "{n} s",
}

JA = {
    "title": "既存の顧客を取り込む",
    "intro": "Shopify の顧客をすべてスマレジ会員にします（重複なし）。確認済みメールアドレスが同じ店舗会員、"
             "または顧客IDを会員コードに持つ会員とはつなぎ、それ以外は新しく登録します。",
    "start": "顧客を取り込む", "cancel": "取り込みを中止",
    "counted": "Shopify から読み込み", "linked": "既存会員とつないだ", "created": "新規登録", "held": "保留（要判断）",
    "failed": "失敗", "time_left": "残り時間",
    "state_none": "まだ取り込んでいません。", "state_queued": "待機中：まもなく開始します。",
    "state_running": "取り込み中…", "state_done": "取り込みが完了しました。",
    "state_failed": "取り込みに失敗しました：{reason}",
    "state_cancelled": "取り込みを中止しました。",
    "phase_export": "Shopify が顧客データを書き出しています。", "phase_read": "顧客データを読み込んでいます。",
    "phase_match": "会員をつなぎ、登録しています。",
    "held_title": "保留中の顧客（「同期エラーと重複」でつなぐ会員を選んでください）",
    "minutes": "{n} 分", "seconds": "{n} 秒",
}


def texts(lang: str) -> dict[str, str]:
    return JA if lang == "ja" else EN

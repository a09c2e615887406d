// Strings and Intl formatting for the two languages the console speaks (issue 13: zh-CN and English).
const STRINGS = {
  en: {
    app: "CRM console", skip: "Skip to content", signin: "Sign in", signout: "Sign out", language: "Language",
    user_or_email: "Rep id or email", password: "Password", signin_failed: "Wrong user or password.",
    too_many: "Too many failed attempts: try again in {s} s.", token_option: "Sign in with an API token instead",
    token: "API token (Bearer)", use_token: "Use this token", signin_hint: "Sign in with your rep id or email.",
    role: "Role", team: "Team", no_team: "no team",
    "role.rep": "Rep", "role.manager": "Manager", "role.admin": "Admin",
    nav_today: "Today", nav_customers: "Customers", nav_dashboard: "Dashboard", nav_alerts: "Alert queue",
    nav_handover: "Hand-over", nav_imports: "Imports", nav_reps: "Reps", nav_rules: "Churn rules & health",
    nav_cadence: "Cadence policy", nav_audit: "Audit log",
    loading: "Loading…", error: "Something went wrong", retry: "Retry", not_found: "Not found, or outside your scope.",
    forbidden: "Your role may not do this.", save: "Save", saved: "Saved.", cancel: "Cancel", close: "Close",
    today_title: "Today's follow-ups", today_counts: "{total} tasks: {overdue} overdue, {due_today} due today",
    empty_today: "Nothing due today. Well done.", overdue: "overdue", days_late: "{n} d late", due: "Due",
    customer: "Customer", reason: "Reason", purpose: "Purpose", actions: "Actions",
    log_interaction: "Log interaction", skip_task: "Skip", skip_reason: "Why skip this task?", skip_confirm: "Skip task",
    skipped: "Task skipped.", logged: "Interaction logged.", completes: "Completes task", none: "none",
    next_task: "Next follow-up scheduled for {d}.",
    "reason.cadence": "cadence", "reason.key_moment": "key moment", "reason.care": "care date",
    "reason.recall": "churn recall", "reason.complaint": "complaint", "reason.manual": "manual",
    kind: "Kind", outcome: "Outcome", occurred_at: "When", satisfaction: "Satisfaction (1-5)", summary: "Summary",
    next_step: "Next step", phase: "Phase", auto: "automatic",
    "kind.call": "call", "kind.message": "message", "kind.email": "email", "kind.visit": "visit",
    "kind.meeting": "meeting", "kind.complaint": "complaint", "kind.survey": "survey",
    "outcome.reached": "reached", "outcome.no_answer": "no answer", "outcome.declined": "declined",
    "outcome.positive": "positive", "outcome.negative": "negative", "outcome.neutral": "neutral",
    "outcome.resolved": "resolved", "outcome.open": "open",
    "phase.pre_sale": "pre-sale", "phase.post_sale": "post-sale",
    customers_title: "Customers", search: "Search company", tier: "Tier", lifecycle: "Lifecycle", stage: "Stage",
    owner: "Owner", revenue_12m: "12-month revenue", last_purchase: "Last purchase", more: "More",
    any: "any", industry: "Industry", filter: "Filter", no_customers: "No customers match.",
    "lifecycle.potential": "potential", "lifecycle.new": "new", "lifecycle.active": "active",
    "lifecycle.dormant": "dormant", "lifecycle.at_risk": "at risk", "lifecycle.churned": "churned",
    "stage.first_contact": "first contact", "stage.needs_analysis": "needs analysis", "stage.proposal": "proposal",
    "stage.won": "won", "stage.lost": "lost",
    profile: "Profile", contacts: "Contacts", decision_maker: "decision maker", name: "Name", phone: "Phone",
    email: "Email", tags: "Tags", notes: "Notes", source_channel: "Source", created: "Created",
    important_dates: "Important dates", timeline: "Timeline", health: "Health", score: "Score", band: "Band",
    "band.healthy": "healthy", "band.watch": "watch", "band.at_risk": "at risk",
    breakdown: "Breakdown", weight: "weight", signals: "Signals", open_alerts: "Open alerts",
    "sub.recency": "recency", "sub.frequency": "frequency", "sub.monetary": "monetary", "sub.engagement": "engagement",
    ev_interaction: "Interaction", ev_purchase: "Purchase", ev_stage: "Stage move", ev_task: "Task",
    ev_alert: "Alert", ev_class: "Classification", ev_owner: "Owner change", open_tasks: "Open tasks",
    "status.open": "open", "status.done": "done", "status.skipped": "skipped", "status.missed": "missed",
    "status.acknowledged": "acknowledged", "status.escalated": "escalated", "status.resolved": "resolved",
    dashboard_title: "Team dashboard", period_kind: "Period", from: "From", to: "To",
    "pk.day": "day", "pk.week": "week", "pk.month": "month", "pk.quarter": "quarter", "pk.half": "half-year", "pk.year": "year", rep: "Rep", all: "all",
    churn_over_time: "Churn rate over time", repurchase_over_time: "Repurchase rate over time",
    funnel: "Funnel (stage entries)", coverage_by_rep: "Follow-up coverage and missed rate by rep", coverage_by_team: "Follow-up coverage and missed rate by team",
    health_distribution: "Health distribution", tier_distribution: "Customers by tier",
    lifecycle_distribution: "Customers by lifecycle", churn_rate: "churn rate", repurchase_rate: "repurchase rate",
    followup_coverage: "coverage", missed_followup_rate: "missed rate", entered: "entered", customers: "customers",
    period: "Period", click_hint: "Click a bar to list the customers behind it.",
    customers_behind: "Customers behind “{label}”", headline: "Headline figures",
    alerts_title: "Alert queue", value_at_stake: "Value at stake", risk: "Risk", rules: "Rules",
    acknowledge: "Acknowledge", resolve: "Resolve", reassign: "Reassign", note: "Note", new_owner: "New owner",
    "outcome.recovered": "recovered", "outcome.lost": "lost", "outcome.false_alarm": "false alarm",
    queue_total: "{n} customers, {v} at stake", queue_empty: "No unresolved alerts.", raised: "Raised",
    "rule.silence": "silence", "rule.no_repurchase": "no repurchase", "rule.interval_lengthening": "lengthening intervals",
    "rule.unanswered_followups": "unanswered follow-ups", "rule.open_complaint": "open complaint",
    "rule.low_satisfaction": "low satisfaction",
    handover_title: "Hand over a departing rep", departing: "Departing rep", to_owner: "To one rep",
    to_team: "Round-robin over a team", target: "Target", deactivate: "Deactivate the departing rep",
    preview: "Preview", do_handover: "Hand over", handover_done: "{n} customers moved.",
    preview_owns: "{rep} owns {n} customers; they go to:",
    imports_title: "Import spreadsheets", file: "File (CSV or .xlsx)", dry_run: "Dry run (check only)",
    timezone: "Time zone of dates without one", detect: "tell from headers", start_import: "Upload and import",
    uploading: "Uploading {p}%", rows: "{done} of {total} rows", imported: "imported", unchanged: "unchanged",
    rejected: "rejected", download_rejected: "Download rejected rows (CSV)", recent_imports: "Recent imports",
    "job.awaiting_file": "awaiting file", "job.queued": "queued", "job.running": "running", "job.done": "done",
    "job.failed": "failed",
    reps_title: "Reps directory", register: "Register", active: "Active", inactive: "inactive",
    deactivate_btn: "Deactivate", activate_btn: "Reactivate", manager_id: "Manager id", id: "Id",
    set_password: "Set password", new_password: "New password", password_set: "Password set.",
    rules_title: "Churn rules and health score", enabled: "enabled", rules_saved: "Rules saved (version {v}).",
    reset_overrides: "Drop all overrides", overridden: "overridden",
    cadence_title: "Cadence policy (days between touches)", key: "Key", days: "Days (empty: no cadence)",
    add_row: "Add a key", remove: "Remove", keep_defaults: "Keep the defaults for keys not listed",
    cadence_help: "A key is a lifecycle (active), a tier (A), tier/lifecycle (A/active) or *.",
    audit_title: "Audit log", missing_api: "The API offers no listing for this yet.",
    audit_service: "Service", audit_entity: "Entity", audit_entity_id: "Entity id",
    nav_classification: "Classification", classification_title: "Classification thresholds",
    classification_help: "Stored over the environment's settings; applied to everyone by the next sweep, to each customer at its next purchase or touch",
    tier_minimums: "Rolling 12-month minimum per tier", lifecycle_days: "Lifecycle (days since the last purchase)",
    new_days: "New for", active_days: "Active within", at_risk_days: "At risk within", churned_days: "Churned after",
    churn_contact_days: "No touch for (to churn)",
    fix_fields: "Please fix the fields marked below.", required: "required", back: "Back",
    page_missing: "No such page.", base_currency: "base currency", all_customers_of: "Customers of {rep}",
    figures_table: "The figures as a table", revenue: "Revenue", changes: "Changes (audit log of this customer)", changes_count: "{n} changes", actor: "By", action: "Action", changed: "What changed", headline_period: "Headline & funnel period", now_at_stage: "Customers now at stage {stage}", entered_stage: "Customers who entered {stage} in {period}", first_of: "The first {n} of {total}.", due_customers: "Customers due a follow-up", churned: "Churned", repeat_buyers: "Repeat buyers", no_listing: "The API has no listing of the customers behind this figure.",
    in_scope: "in your scope", breakdown_none: "none", departing_none: "Pick the departing rep.",
  },
  "zh-CN": {
    app: "CRM 控制台", skip: "跳到正文", signin: "登录", signout: "退出", language: "语言",
    user_or_email: "销售编号或邮箱", password: "密码", signin_failed: "用户名或密码错误。",
    too_many: "失败次数过多，请 {s} 秒后再试。", token_option: "改用 API 令牌登录",
    token: "API 令牌（Bearer）", use_token: "使用此令牌", signin_hint: "请用销售编号或邮箱登录。",
    role: "角色", team: "团队", no_team: "无团队",
    "role.rep": "销售", "role.manager": "经理", "role.admin": "管理员",
    nav_today: "今日", nav_customers: "客户", nav_dashboard: "看板", nav_alerts: "预警队列",
    nav_handover: "交接", nav_imports: "导入", nav_reps: "销售名录", nav_rules: "流失规则与健康分",
    nav_cadence: "跟进节奏", nav_audit: "审计日志",
    loading: "加载中…", error: "出错了", retry: "重试", not_found: "不存在，或不在您的权限范围内。",
    forbidden: "您的角色无权执行此操作。", save: "保存", saved: "已保存。", cancel: "取消", close: "关闭",
    today_title: "今日跟进", today_counts: "共 {total} 项：逾期 {overdue} 项，今日到期 {due_today} 项",
    empty_today: "今天没有待办，干得好。", overdue: "逾期", days_late: "逾期 {n} 天", due: "到期",
    customer: "客户", reason: "原因", purpose: "目的", actions: "操作",
    log_interaction: "记录跟进", skip_task: "跳过", skip_reason: "为什么跳过此任务？", skip_confirm: "跳过任务",
    skipped: "任务已跳过。", logged: "跟进已记录。", completes: "完成任务", none: "无",
    next_task: "下次跟进已安排在 {d}。",
    "reason.cadence": "跟进节奏", "reason.key_moment": "关键节点", "reason.care": "关怀日期",
    "reason.recall": "流失挽回", "reason.complaint": "投诉", "reason.manual": "手动",
    kind: "方式", outcome: "结果", occurred_at: "时间", satisfaction: "满意度（1-5）", summary: "摘要",
    next_step: "下一步", phase: "阶段", auto: "自动",
    "kind.call": "电话", "kind.message": "消息", "kind.email": "邮件", "kind.visit": "拜访",
    "kind.meeting": "会议", "kind.complaint": "投诉", "kind.survey": "回访调查",
    "outcome.reached": "已联系上", "outcome.no_answer": "未接通", "outcome.declined": "拒绝",
    "outcome.positive": "积极", "outcome.negative": "消极", "outcome.neutral": "中性",
    "outcome.resolved": "已解决", "outcome.open": "未解决",
    "phase.pre_sale": "售前", "phase.post_sale": "售后",
    customers_title: "客户", search: "搜索公司名", tier: "等级", lifecycle: "生命周期", stage: "销售阶段",
    owner: "负责人", revenue_12m: "近 12 个月销售额", last_purchase: "最近购买", more: "更多",
    any: "全部", industry: "行业", filter: "筛选", no_customers: "没有符合条件的客户。",
    "lifecycle.potential": "潜在", "lifecycle.new": "新客户", "lifecycle.active": "活跃",
    "lifecycle.dormant": "沉睡", "lifecycle.at_risk": "有流失风险", "lifecycle.churned": "已流失",
    "stage.first_contact": "初次接触", "stage.needs_analysis": "需求分析", "stage.proposal": "方案报价",
    "stage.won": "赢单", "stage.lost": "输单",
    profile: "概况", contacts: "联系人", decision_maker: "决策人", name: "姓名", phone: "电话",
    email: "邮箱", tags: "标签", notes: "备注", source_channel: "来源", created: "创建于",
    important_dates: "重要日期", timeline: "时间线", health: "健康度", score: "得分", band: "区间",
    "band.healthy": "健康", "band.watch": "关注", "band.at_risk": "风险",
    breakdown: "分项", weight: "权重", signals: "信号", open_alerts: "未关闭预警",
    "sub.recency": "近度", "sub.frequency": "频度", "sub.monetary": "金额", "sub.engagement": "互动",
    ev_interaction: "跟进", ev_purchase: "购买", ev_stage: "阶段变更", ev_task: "任务",
    ev_alert: "预警", ev_class: "分类变化", ev_owner: "负责人变更", open_tasks: "未完成任务",
    "status.open": "待处理", "status.done": "已完成", "status.skipped": "已跳过", "status.missed": "已错过",
    "status.acknowledged": "已认领", "status.escalated": "已升级", "status.resolved": "已关闭",
    dashboard_title: "团队看板", period_kind: "周期", from: "从", to: "到",
    "pk.day": "日", "pk.week": "周", "pk.month": "月", "pk.quarter": "季度", "pk.half": "半年", "pk.year": "年", rep: "销售", all: "全部",
    churn_over_time: "流失率趋势", repurchase_over_time: "复购率趋势",
    funnel: "销售漏斗（进入各阶段）", coverage_by_rep: "各销售跟进覆盖率与漏跟率", coverage_by_team: "各团队跟进覆盖率与漏跟率",
    health_distribution: "健康度分布", tier_distribution: "客户等级分布",
    lifecycle_distribution: "生命周期分布", churn_rate: "流失率", repurchase_rate: "复购率",
    followup_coverage: "覆盖率", missed_followup_rate: "漏跟率", entered: "进入", customers: "客户数",
    period: "期间", click_hint: "点击柱形可列出其背后的客户。",
    customers_behind: "“{label}”背后的客户", headline: "核心指标",
    alerts_title: "预警队列", value_at_stake: "风险金额", risk: "风险", rules: "规则",
    acknowledge: "认领", resolve: "关闭", reassign: "转交", note: "备注", new_owner: "新负责人",
    "outcome.recovered": "已挽回", "outcome.lost": "已流失", "outcome.false_alarm": "误报",
    queue_total: "{n} 个客户，风险金额 {v}", queue_empty: "没有未关闭的预警。", raised: "触发于",
    "rule.silence": "长期未联系", "rule.no_repurchase": "未按周期复购", "rule.interval_lengthening": "购买间隔拉长",
    "rule.unanswered_followups": "跟进无回应", "rule.open_complaint": "投诉未解决",
    "rule.low_satisfaction": "满意度低",
    handover_title: "离职交接", departing: "离职销售", to_owner: "交给一位销售",
    to_team: "在团队内轮流分配", target: "接收方", deactivate: "停用离职销售",
    preview: "预览", do_handover: "执行交接", handover_done: "已转移 {n} 个客户。",
    preview_owns: "{rep} 名下有 {n} 个客户，将交给：",
    imports_title: "导入表格", file: "文件（CSV 或 .xlsx）", dry_run: "试运行（只检查）",
    timezone: "未带时区的日期所用时区", detect: "按表头识别", start_import: "上传并导入",
    uploading: "上传中 {p}%", rows: "已处理 {done} / {total} 行", imported: "已导入", unchanged: "未变化",
    rejected: "被拒绝", download_rejected: "下载被拒绝的行（CSV）", recent_imports: "最近的导入",
    "job.awaiting_file": "等待文件", "job.queued": "排队中", "job.running": "进行中", "job.done": "完成",
    "job.failed": "失败",
    reps_title: "销售名录", register: "登记", active: "在职", inactive: "已停用",
    deactivate_btn: "停用", activate_btn: "重新启用", manager_id: "经理编号", id: "编号",
    set_password: "设置密码", new_password: "新密码", password_set: "密码已设置。",
    rules_title: "流失规则与健康分", enabled: "启用", rules_saved: "规则已保存（版本 {v}）。",
    reset_overrides: "清除全部覆盖设置", overridden: "已覆盖",
    cadence_title: "跟进节奏（两次接触间隔天数）", key: "键", days: "天数（留空：不设节奏）",
    add_row: "添加一项", remove: "删除", keep_defaults: "未列出的键保留默认值",
    cadence_help: "键可以是生命周期（active）、等级（A）、等级/生命周期（A/active）或 *。",
    audit_title: "审计日志", missing_api: "API 暂未提供此列表。",
    audit_service: "服务", audit_entity: "对象", audit_entity_id: "对象编号",
    nav_classification: "客户分级", classification_title: "分级阈值",
    classification_help: "覆盖环境配置；下次定时分级时对所有客户生效，客户有新的购买或跟进时即对其生效",
    tier_minimums: "各等级近 12 个月最低金额", lifecycle_days: "生命周期（距上次购买天数）",
    new_days: "新客户期", active_days: "活跃期", at_risk_days: "流失风险期", churned_days: "流失判定",
    churn_contact_days: "无跟进天数（判定流失）",
    fix_fields: "请修正下面标出的字段。", required: "必填", back: "返回",
    page_missing: "页面不存在。", base_currency: "本位币", all_customers_of: "{rep} 的客户",
    figures_table: "数据表", revenue: "销售额", changes: "变更记录（此客户的审计日志）", changes_count: "共 {n} 条变更", actor: "操作人", action: "操作", changed: "变更内容", headline_period: "核心指标与漏斗期间", now_at_stage: "当前处于“{stage}”阶段的客户", entered_stage: "{period} 进入“{stage}”阶段的客户", first_of: "前 {n} 位，共 {total} 位。", due_customers: "应跟进客户", churned: "流失", repeat_buyers: "复购客户", no_listing: "API 未提供此指标背后客户的列表。",
    in_scope: "您的权限范围内", breakdown_none: "不分组", departing_none: "请选择离职销售。",
  },
};

export const LANGS = [["zh-CN", "中文"], ["en", "English"]];

function initialLang() {
  const stored = localStorage.getItem("crm.lang");
  if (stored && STRINGS[stored]) return stored;
  // the browser's language first (issue 13), English for anything that is not Chinese
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export let lang = initialLang();
document.documentElement.lang = lang;

export function setLang(value) {
  lang = value;
  localStorage.setItem("crm.lang", value);
  document.documentElement.lang = value;
}

export function t(key, vars) {
  let text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  if (vars) for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

// an enum value's label, e.g. tl("lifecycle", "at_risk"); unknown values show as they are
export function tl(group, value) {
  if (value === null || value === undefined || value === "") return "–";
  const key = `${group}.${value}`;
  return STRINGS[lang][key] ?? STRINGS.en[key] ?? String(value);
}

export function fmtDateTime(value) {
  if (!value) return "–";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export function fmtDate(value) {
  if (!value) return "–";
  // a bare date (2026-07-14) is a calendar day, not midnight UTC: format it as such
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00`) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium" }).format(date);
}

// money with its currency when the API names it; base-currency figures come without a code (see docs/console.md)
export function fmtMoney(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "–";
  const number = Number(amount);
  if (currency) {
    try {
      return new Intl.NumberFormat(lang, { style: "currency", currency }).format(number);
    } catch (err) { /* an unknown code: plain number and the code */ }
    return `${fmtNumber(number, 2)} ${currency}`;
  }
  return fmtNumber(number, 2);
}

export function fmtNumber(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

export function fmtPercent(value) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(value);
}

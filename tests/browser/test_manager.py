"""A manager runs the team: the dashboard's charts carry the reports API's numbers, the alert queue, imports."""
from datetime import date

CHART_IDS = ["chart-churn", "chart-repurchase", "chart-funnel", "chart-coverage", "chart-tier", "chart-lifecycle", "chart-health"]
READ_OPTIONS = """ids => Object.fromEntries(ids.map(id => {
    const option = echarts.getInstanceByDom(document.getElementById(id)).getOption();
    return [id, {x: option.xAxis[0].data, series: option.series.map(s => ({name: s.name, data: s.data}))}];
}))"""


async def chart_options(page, ids=CHART_IDS):
    await page.wait_for_function("""ids => window.echarts && ids.every(id => {
        const el = document.getElementById(id); const chart = el && echarts.getInstanceByDom(el);
        return chart && chart.getOption().series.length > 0; })""", arg=ids)
    return await page.evaluate(READ_OPTIONS, ids)


async def test_the_dashboard_charts_carry_the_reports_apis_numbers(open_console, crm, world):
    page = await open_console("mgr-north")
    await page.wait_for_url("**/dashboard")
    charts = await chart_options(page)
    await page.shot("dashboard")
    as_manager = {"user": "mgr-north"}

    for figure, column in (("churn", "churn_rate"), ("repurchase", "repurchase_rate")):
        table = await crm.get(f"/v1/reports/{figure}", period_kind="month", **as_manager)
        chart = charts[f"chart-{figure}"]
        assert chart["x"] == [row["period"] for row in table["rows"]]
        assert chart["series"][0]["data"] == [row[column] for row in table["rows"]]
    assert any(rate is not None for rate in charts["chart-repurchase"]["series"][0]["data"])

    board = await crm.get("/v1/reports/dashboard", **as_manager)
    assert charts["chart-funnel"]["series"][0]["data"] == [step["entered"] for step in board["funnel"]]

    today = date.today().isoformat()
    followups = await crm.get("/v1/reports/followups", period_kind="month", breakdown="rep", to=today, **as_manager, **{"from": today})
    assert charts["chart-coverage"]["x"] == [row["rep"] for row in followups["rows"]]
    assert charts["chart-coverage"]["series"][0]["data"] == [row["followup_coverage"] for row in followups["rows"]]
    assert charts["chart-coverage"]["series"][1]["data"] == [row["missed_followup_rate"] for row in followups["rows"]]

    tiers = await crm.get("/v1/reports/distribution", dimension="tier", **as_manager)
    assert charts["chart-tier"]["x"] == [v["value"] for v in tiers["values"]]
    assert charts["chart-tier"]["series"][0]["data"] == [v["customers"] for v in tiers["values"]]
    assert sum(charts["chart-tier"]["series"][0]["data"]) == tiers["total"] > 0

    bands = (await crm.get("/v1/alerts/summary", **as_manager))["health_bands"]
    assert charts["chart-health"]["series"][0]["data"] == [bands.get(b, 0) for b in ("healthy", "watch", "at_risk")]

    # a breakdown and another period kind: one line per tier, per quarter, as the API answers them
    await page.get_by_label("Period", exact=True).select_option("quarter")
    await page.get_by_label("Breakdown").select_option("tier")
    await page.get_by_role("button", name="Filter").click()
    table = await crm.get("/v1/reports/churn", period_kind="quarter", breakdown="tier", **as_manager)
    groups = sorted({row["tier"] for row in table["rows"]})
    await page.wait_for_function("n => echarts.getInstanceByDom(document.getElementById('chart-churn')).getOption().series.length === n",
                                 arg=len(groups))
    churn = (await page.evaluate(READ_OPTIONS, ["chart-churn"]))["chart-churn"]
    assert sorted(s["name"] for s in churn["series"]) == groups
    for series in churn["series"]:
        expected = {row["period"]: row["churn_rate"] for row in table["rows"] if row["tier"] == series["name"]}
        assert dict(zip(churn["x"], series["data"])) == {p: expected.get(p) for p in churn["x"]}

    # a click on the tier A bar lists the customers behind it
    await page.locator("#chart-tier").scroll_into_view_if_needed()
    point = await page.evaluate("""() => echarts.getInstanceByDom(document.getElementById('chart-tier'))
        .convertToPixel({seriesIndex: 0}, ['A', 0])""")
    box = await page.locator("#chart-tier").bounding_box()
    await page.mouse.click(box["x"] + point[0], box["y"] + point[1] - 5)
    drill = page.get_by_test_id("drill")
    await drill.locator("tbody tr").first.wait_for()
    listed = set(await drill.locator("tbody tr td:first-child").all_inner_texts())
    expected = {c["company"] for c in (await crm.get("/v1/customers", tier="A", team="north", **as_manager))["items"]}
    assert listed == expected and "Northwind Trading" in listed
    await page.shot("dashboard-drill")

    # a click on the funnel's first bar lists who entered that stage in the headline period: the reports API's list
    entered = board["funnel"][0]["entered"]
    assert entered > 0
    await page.get_by_role("button", name="Close").click()
    await page.locator("#chart-funnel").scroll_into_view_if_needed()
    point = await page.evaluate("""n => echarts.getInstanceByDom(document.getElementById('chart-funnel'))
        .convertToPixel({seriesIndex: 0}, [0, n / 2])""", entered)
    box = await page.locator("#chart-funnel").bounding_box()
    await page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    await drill.get_by_role("heading", name=f"in {board['period']['label']}").wait_for()
    await drill.locator("tbody tr").first.wait_for()
    listed = set(await drill.locator("tbody tr td:first-child").all_inner_texts())
    behind = await crm.get("/v1/reports/customers", metric="stage.entered:first_contact",
                           period=board["period"]["label"], **as_manager)
    assert behind["total"] == entered
    names = {(await crm.get(f"/v1/customers/{item['customer_id']}", **as_manager))["company"] for item in behind["items"]}
    assert listed == names and len(listed) == min(entered, 50)


async def test_the_alert_queue_acknowledges_and_resolves(open_console, crm, world):
    customer_id = world["customers"]["lakeside"]
    page = await open_console("mgr-north")
    await page.get_by_role("link", name="Alert queue").click()
    row = page.locator(f"tr[data-customer='{customer_id}']")
    await row.get_by_role("link", name="Lakeside Dental").wait_for()  # names come from the customers service
    await page.shot("alert-queue")
    alert = (await crm.get("/v1/alerts", customer_id=customer_id, status="unresolved", user="mgr-north"))["items"][0]
    item = page.locator(f"li[data-alert='{alert['id']}']")
    await item.get_by_role("button", name="Acknowledge").click()
    await item.get_by_role("form", name="Acknowledge").get_by_label("Note").fill("Calling them this week")
    await item.get_by_role("form", name="Acknowledge").get_by_role("button", name="Acknowledge").click()
    await page.get_by_role("status").filter(has_text="Saved.").wait_for()
    stored = await crm.get(f"/v1/alerts/{alert['id']}", user="mgr-north")
    assert (stored["status"], stored["acknowledged_by"]) == ("acknowledged", "mgr-north")

    await item.get_by_role("button", name="Resolve").click()
    form = item.get_by_role("form", name="Resolve")
    await form.get_by_label("Outcome").select_option("false_alarm")
    await form.get_by_role("button", name="Resolve").click()
    await item.wait_for(state="detached")
    stored = await crm.get(f"/v1/alerts/{alert['id']}", user="mgr-north")
    assert (stored["status"], stored["outcome"]) == ("resolved", "false_alarm")


async def test_an_import_shows_progress_and_gives_the_rejected_rows(open_console, crm, tmp_path):
    upload = tmp_path / "customers.csv"
    upload.write_text("external_id,company,owner\nIMP-1,Import One Ltd,rep-n2\nIMP-2,,rep-n2\nIMP-3,Import Three Ltd,nobody-here\n")
    page = await open_console("mgr-north")
    await page.get_by_role("link", name="Imports").click()
    await page.get_by_label("File (CSV or .xlsx)").set_input_files(str(upload))
    await page.get_by_label("Dry run (check only)").check()
    await page.get_by_role("button", name="Upload and import").click()
    job = page.get_by_test_id("import-job")
    await page.wait_for_selector("[data-testid=import-job][data-status=done], [data-testid=import-job][data-status=failed]", timeout=30000)
    assert await job.get_attribute("data-status") == "done"
    shown = {"imported": int(await job.get_by_test_id("imported").inner_text()), "rejected": int(await job.get_by_test_id("rejected").inner_text())}
    stored = (await crm.get("/v1/imports", user="mgr-north"))["items"][0]
    assert shown == {"imported": stored["imported"], "rejected": stored["rejected"]} and stored["rejected"] >= 1
    await page.shot("import")
    async with page.expect_download() as download_info:
        await job.get_by_role("button", name="Download rejected rows (CSV)").click()
    download = await download_info.value
    await download.save_as(tmp_path / "rejected.csv")
    text = (tmp_path / "rejected.csv").read_text(encoding="utf-8-sig")
    assert "row" in text.splitlines()[0].lower() and "company" in text
    # a dry run stores nothing
    assert not (await crm.get("/v1/customers", external_id="IMP-1"))["items"]


async def test_a_departing_reps_hand_over_previews_who_gets_what_then_moves_them(open_console, crm, world):
    page = await open_console("mgr-north")
    await page.get_by_role("link", name="Hand-over").click()
    await page.get_by_label("Departing rep", exact=True).select_option("rep-n3")
    await page.get_by_label("To one rep", exact=True).check()
    await page.get_by_label("New owner").select_option("rep-n2")
    await page.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("handover-preview")
    text = await preview.inner_text()  # the API's dry run: who gets which customer
    assert "rep-n3 owns 1 customers" in text and "Quarry Tools → rep-n2" in text, text
    assert (await crm.get(f"/v1/customers/{world['customers']['quarry']}"))["owner_id"] == "rep-n3"  # not yet
    await page.shot("handover-preview")
    await preview.get_by_role("button", name="Hand over").click()
    result = page.get_by_test_id("handover-result")
    await result.wait_for()
    assert "1 customers moved." in await result.inner_text()
    assert (await crm.get(f"/v1/customers/{world['customers']['quarry']}"))["owner_id"] == "rep-n2"
    assert {r["id"]: r for r in (await crm.get("/v1/reps"))["items"]}["rep-n3"]["active"] is False


async def test_an_admin_sees_coverage_by_team_not_every_rep(open_console, crm, world):
    page = await open_console("admin")
    await page.get_by_role("navigation").get_by_role("link", name="Dashboard").click()
    coverage = (await chart_options(page, ["chart-coverage"]))["chart-coverage"]
    today = date.today().isoformat()
    by_team = await crm.get("/v1/reports/followups", period_kind="month", breakdown="team", to=today, **{"from": today})
    assert coverage["x"] == [row["team"] for row in by_team["rows"]] and coverage["x"]
    assert coverage["series"][0]["data"] == [row["followup_coverage"] for row in by_team["rows"]]

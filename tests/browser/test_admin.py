"""An admin configures without code: rules and cadences in forms, a bad value refused with the field named."""


async def test_an_admin_changes_a_churn_rule_and_a_bad_value_is_refused_at_its_field(open_console, crm):
    field = "rules.silence.days_by_tier.A"
    page = await open_console("admin")
    try:
        await page.get_by_role("link", name="Churn rules & health").click()
        days = page.locator(f"input[name='{field}']")
        await days.fill("-3")
        await page.get_by_role("button", name="Save").click()
        error = page.locator(f".field-error[data-field='{field}']")
        await error.wait_for()
        assert "positive whole number" in await error.inner_text()
        assert await days.get_attribute("aria-invalid") == "true"
        await page.shot("rules-refused")
        assert (await crm.get("/v1/alert-rules"))["config"]["rules"]["silence"]["days_by_tier"]["A"] != -3

        await days.fill("10")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("status").filter(has_text="Rules saved").wait_for()
        stored = await crm.get("/v1/alert-rules")
        assert stored["config"]["rules"]["silence"]["days_by_tier"]["A"] == 10
        assert stored["overrides"] == {"rules": {"silence": {"days_by_tier": {"A": 10}}}}
        assert stored["updated_by"] == "admin"
        await page.locator(f".field:has(input[name='{field}']) .overridden").wait_for()
    finally:
        await crm.call("PUT", "/v1/alert-rules", {})


async def test_an_admin_edits_the_cadence_policy_and_a_zero_is_refused_at_its_key(open_console, crm):
    before = await crm.get("/v1/cadence-policy")
    page = await open_console("admin")
    try:
        await page.get_by_role("link", name="Cadence policy").click()
        days = page.locator("input[name='days-A/active']")
        await days.fill("0")
        await page.get_by_role("button", name="Save").click()
        error = page.locator(".field-error[data-field='A/active']")
        await error.wait_for()
        assert "positive whole number" in await error.inner_text()
        await page.shot("cadence-refused")
        assert (await crm.get("/v1/cadence-policy"))["intervals"] == before["intervals"]

        await days.fill("10")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("status").filter(has_text="Saved.").wait_for()
        stored = await crm.get("/v1/cadence-policy")
        assert stored["intervals"]["A/active"] == 10 and stored["updated_by"] == "admin"
    finally:
        await crm.call("PUT", "/v1/cadence-policy", {"intervals": before["intervals"]})


async def test_an_admin_registers_and_deactivates_a_rep_with_field_errors_shown(open_console, crm):
    page = await open_console("admin")
    await page.wait_for_url("**/admin/reps")
    form = page.get_by_role("form", name="Register")
    await form.get_by_label("Id", exact=True).fill("bad id with spaces")
    await form.get_by_label("Name", exact=True).fill("Someone")
    await form.get_by_role("button", name="Register").click()
    await form.locator(".field-error[data-field=id]").wait_for()
    await page.shot("reps-refused")

    await form.get_by_label("Id", exact=True).fill("rep-n9")
    await form.get_by_label("Email").fill("rep-n9@example.com")
    await form.get_by_label("Team").fill("north")
    await form.get_by_role("button", name="Register").click()
    row = page.locator("tr[data-rep='rep-n9']")
    await row.wait_for()
    assert {r["id"]: r for r in (await crm.get("/v1/reps"))["items"]}["rep-n9"]["active"] is True
    await row.get_by_role("button", name="Deactivate").click()
    await row.get_by_role("button", name="Reactivate").wait_for()
    assert {r["id"]: r for r in (await crm.get("/v1/reps"))["items"]}["rep-n9"]["active"] is False
    await page.shot("reps")


async def test_an_admin_reads_the_audit_log_of_every_service_merged(open_console, crm):
    await crm.call("PUT", "/v1/alert-rules", {"rules": {"silence": {"days_by_tier": {"B": 45}}}})
    await crm.call("PUT", "/v1/alert-rules", {})
    newest = {service: (await crm.get(f"/v1/audit/{service}", limit=1))["items"]
              for service in ("customers", "followups", "alerts", "reports")}
    page = await open_console("admin")
    await page.get_by_role("link", name="Audit log").click()
    rows = page.locator("tr[data-audit]")
    await rows.first.wait_for()
    shown = [await row.get_attribute("data-audit") for row in await rows.all()]
    for service, items in newest.items():  # each service's newest entry is among the merged ones
        if items:
            assert f"{service}-{items[0]['id']}" in shown, service
    form = page.get_by_role("form", name="Audit log")
    await form.get_by_label("Service").select_option("alerts")
    await form.get_by_label("Action").fill(newest["alerts"][0]["action"])
    await form.get_by_role("button", name="Filter").click()
    await page.locator("tr[data-audit^='customers-']").first.wait_for(state="detached")
    only = [await row.get_attribute("data-audit") for row in await page.locator("tr[data-audit]").all()]
    assert only and all(name.startswith("alerts-") for name in only)
    await page.shot("audit-log")


async def test_an_admin_moves_a_tier_minimum_and_a_minimum_above_the_tier_above_is_refused(open_console, crm):
    page = await open_console("admin")
    try:
        await page.get_by_role("link", name="Classification").click()
        form = page.get_by_role("form", name="Classification thresholds")
        minimum_b = form.get_by_label("Tier B")
        await minimum_b.fill("250000")  # above tier A's 100,000
        await form.get_by_role("button", name="Save").click()
        error = page.locator(".field-error[data-field='tier_minimums.B']")
        await error.wait_for()
        assert "below tier A" in await error.inner_text()
        assert (await crm.get("/v1/classification/settings"))["overrides"] == {}
        await minimum_b.fill("50000")
        await form.get_by_label("Active within").fill("150")
        await form.get_by_role("button", name="Save").click()
        await page.get_by_role("status").filter(has_text="Saved.").wait_for()
        stored = await crm.get("/v1/classification/settings")
        assert stored["overrides"] == {"tier_minimums": {"B": "50000"}, "active_days": 150}
        assert stored["policy"]["tier_minimums"]["B"] == "50000" and stored["updated_by"] == "admin"
        await page.shot("classification")
    finally:
        await crm.call("PUT", "/v1/classification/settings", {})

"""A rep works the day: log a touch from today's list or the customer page, skip a task with a reason."""
from datetime import datetime, timedelta


async def worklist_ids(crm, user="rep-n1"):
    return {task["id"] for task in (await crm.get("/v1/worklist", user=user))["items"]}


async def test_logging_an_interaction_from_todays_list_completes_the_task(open_console, crm, world):
    task_id = world["tasks"]["renewal"]
    page = await open_console("rep-n1")
    await page.wait_for_url("**/today")
    row = page.locator(f"tr[data-task='{task_id}']")
    assert "manual" in await row.inner_text() and "Call about the renewal offer" in await row.inner_text()
    await row.get_by_role("button", name="Log interaction").click()
    form = page.get_by_role("form", name="Log interaction")
    await form.get_by_label("Outcome").select_option("positive")
    await form.get_by_label("Summary").fill("Agreed on the renewal terms")
    assert await form.get_by_label("Completes task").input_value() == task_id
    await page.shot("today-log-interaction")
    await form.get_by_role("button", name="Log interaction").click()
    await page.get_by_role("status").filter(has_text="Interaction logged.").wait_for()
    await row.wait_for(state="detached")

    task = await crm.get(f"/v1/tasks/{task_id}", user="rep-n1")
    assert task["status"] == "done" and task["interaction_id"]
    assert task_id not in await worklist_ids(crm)
    logged = await crm.get(f"/v1/customers/{world['customers']['pine']}/interactions", user="rep-n1")
    assert [i["summary"] for i in logged["items"]] == ["Agreed on the renewal terms"]
    assert logged["items"][0]["outcome"] == "positive"


async def test_skipping_a_task_needs_a_reason_and_takes_it_off_the_list(open_console, crm, world):
    task_id = world["tasks"]["visit"]
    page = await open_console("rep-n1")
    row = page.locator(f"tr[data-task='{task_id}']")
    await row.get_by_role("button", name="Skip").click()
    form = page.get_by_role("form", name="Skip")
    await form.get_by_label("Why skip this task?").fill("Customer closed for the holidays")
    await form.get_by_role("button", name="Skip task").click()
    await row.wait_for(state="detached")
    task = await crm.get(f"/v1/tasks/{task_id}", user="rep-n1")
    assert (task["status"], task["skip_reason"]) == ("skipped", "Customer closed for the holidays")
    assert task_id not in await worklist_ids(crm)


async def test_the_customer_page_shows_profile_health_and_one_timeline_and_logs_a_touch(open_console, crm, world):
    customer_id = world["customers"]["northwind"]
    health = await crm.get(f"/v1/customers/{customer_id}/health", user="rep-n1")
    page = await open_console("rep-n1")
    await page.goto(f"{crm.base_url}/customers/{customer_id}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Northwind Trading"
    assert await page.get_by_test_id("health-score").inner_text() == str(health["score"])
    assert "decision maker" in await page.locator("table.contacts").inner_text()
    timeline = page.locator("ol.timeline")
    kinds = set(await timeline.locator("li").evaluate_all("items => items.map(i => i.dataset.type)"))
    assert {"purchase", "stage", "task", "alert"} <= kinds
    assert await timeline.locator("li[data-type=purchase]").count() == 3
    audit = page.locator("section[aria-labelledby=audit-h]")
    await audit.locator("summary").click()
    assert "customer.created" in await audit.inner_text() and "purchase.recorded" in await audit.inner_text()
    await page.shot("customer")

    cadence = [t["id"] for t in (await crm.get("/v1/worklist", user="rep-n1"))["items"]
               if t["customer_id"] == customer_id and t["reason"] == "cadence"]
    assert cadence
    await page.get_by_role("button", name="Log interaction").click()
    form = page.get_by_role("form", name="Log interaction")
    # a touch in the future is refused, and the field at fault says so
    future = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    await form.get_by_label("When").fill(future)
    await form.get_by_label("Summary").fill("Quarterly review call")
    await form.get_by_role("button", name="Log interaction").click()
    await form.locator(".field.invalid [data-field=occurred_at]").wait_for()
    await page.shot("customer-log-refused")
    await form.get_by_label("When").fill(datetime.now().strftime("%Y-%m-%dT%H:%M:%S"))
    await form.get_by_role("button", name="Log interaction").click()
    await page.get_by_role("status").filter(has_text="Interaction logged.").wait_for()
    await timeline.locator("li[data-type=interaction]", has_text="Quarterly review call").wait_for()
    # the newest touch completed the open cadence task and scheduled the next one
    assert not set(cadence) & await worklist_ids(crm)
    assert (await crm.get(f"/v1/tasks/{cadence[0]}", user="rep-n1"))["status"] == "done"

"""Each role signs in through the form, lands on its home and sees only its scope; addresses outside it say so."""
import pytest

HOMES = {"rep-n1": "/today", "mgr-north": "/dashboard", "admin": "/admin/reps"}


async def listed_companies(page):
    await page.wait_for_selector("table.customers tbody tr, p.empty")
    return set(await page.locator("table.customers tbody tr td:first-child a").all_inner_texts())


@pytest.mark.parametrize("user, role, team", [("rep-n1", "Rep", "north"), ("mgr-north", "Manager", "north"),
                                              ("admin", "Admin", "no team")])
async def test_each_role_signs_in_to_its_home_and_sees_only_its_scope(open_console, crm, user, role, team):
    page = await open_console(user)
    await page.wait_for_url(f"**{HOMES[user]}")
    who = page.locator("[data-testid=who]")
    assert await who.locator(".role").inner_text() == role
    assert await who.locator(".team").inner_text() == team
    await page.wait_for_load_state("networkidle")
    await page.shot(f"home-{user}")

    await page.get_by_role("link", name="Customers", exact=True).click()
    shown = await listed_companies(page)
    in_scope = {c["company"] for c in (await crm.get("/v1/customers", user=user, limit=500))["items"]}
    assert shown == in_scope
    if user == "rep-n1":
        assert shown == {"Northwind Trading", "Harbor Foods", "Pine Studio"}
    elif user == "mgr-north":
        assert {"Northwind Trading", "Lakeside Dental"} <= shown and "Southern Cross Ltd" not in shown
    else:
        assert {"Southern Cross Ltd", "Northwind Trading"} <= shown
    await page.shot(f"customers-{user}")

    nav = page.get_by_role("navigation", name="main")
    assert (await nav.get_by_role("link", name="Dashboard").count() == 1) == (user != "rep-n1")
    assert (await nav.get_by_role("link", name="Reps").count() == 1) == (user == "admin")


async def test_a_rep_cannot_open_another_reps_customer_by_editing_the_address(open_console, crm, world):
    page = await open_console("rep-n1")
    for key, company in (("southern", "Southern Cross Ltd"), ("lakeside", "Lakeside Dental")):
        customer_id = world["customers"][key]
        await page.goto(f"{crm.base_url}/customers/{customer_id}")
        assert "Not found, or outside your scope." in await page.get_by_role("alert").inner_text()
        assert company not in await page.content()
        await crm.call("GET", f"/v1/customers/{customer_id}", user="rep-n1", expect=(404,))
    await page.shot("customer-out-of-scope")
    # the rep's own customer opens at the same kind of address
    await page.goto(f"{crm.base_url}/customers/{world['customers']['harbor']}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Harbor Foods"
    # a page of another role says so instead of showing nothing
    await page.goto(f"{crm.base_url}/admin/rules")
    assert "Your role may not do this." in await page.get_by_role("alert").inner_text()


async def test_a_wrong_password_is_refused_with_a_message(open_console):
    page = await open_console("rep-n2", sign_in=False)
    await page.locator("input[name=user]").fill("rep-n2")
    await page.locator("input[name=password]").fill("not-the-password")
    await page.locator("form button[type=submit]").first.click()
    assert "Wrong user or password." in await page.get_by_role("alert").inner_text()
    assert "/signin" in page.url
    await page.shot("signin-refused")


async def test_chinese_from_the_browser_language_with_a_switch(open_console):
    page = await open_console("rep-n1", locale="zh-CN")
    await page.wait_for_url("**/today")
    assert await page.locator("[data-testid=who] .role").inner_text() == "销售"
    assert await page.get_by_role("heading", level=1).inner_text() == "今日跟进"
    first_due = await page.locator("table.worklist tbody tr td").first.inner_text()
    assert "年" in first_due and "月" in first_due  # Intl's zh-CN date, e.g. 2026年12月4日
    await page.shot("today-zh-CN")
    await page.locator("#lang-switch").select_option("en")
    await page.get_by_role("heading", level=1, name="Today's follow-ups").wait_for()
    assert await page.locator("[data-testid=who] .role").inner_text() == "Rep"


async def test_a_refused_token_goes_back_to_sign_in(open_console):
    page = await open_console("rep-n2")
    await page.evaluate("""() => { const s = JSON.parse(sessionStorage.getItem('crm.session'));
        s.token = s.token.slice(0, -6) + 'AAAAAA'; sessionStorage.setItem('crm.session', JSON.stringify(s)); }""")
    await page.get_by_role("link", name="Customers", exact=True).click()
    await page.wait_for_url("**/signin**")
    assert await page.locator("input[name=user]").is_visible()

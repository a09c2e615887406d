"""Every form field has a label, every screen is usable from the keyboard, bad input never leaves a blank page."""
import pytest

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map(el => el.outerHTML.slice(0, 120))"""

SCREENS = {
    "rep-n1": ["/today", "/customers", "/alerts", "/customers/{harbor}"],
    "mgr-north": ["/dashboard", "/alerts", "/handover", "/imports", "/today"],
    "admin": ["/admin/reps", "/admin/rules", "/admin/cadence"],
}


@pytest.mark.parametrize("user", sorted(SCREENS))
async def test_every_field_of_every_screen_has_a_label(open_console, crm, world, user):
    page = await open_console(user)
    for path in SCREENS[user]:
        await page.goto(crm.base_url + path.format(**world["customers"]))
        await page.wait_for_load_state("networkidle")
        await page.locator("main h1").first.wait_for()
        # open the inline forms too (log, skip, acknowledge, password): they have fields of their own
        for name in ("Log interaction", "Skip", "Acknowledge", "Set password"):
            button = page.get_by_role("button", name=name, exact=True)
            if await button.count():
                await button.first.click()
        assert await page.evaluate(UNLABELLED) == [], path
        assert not await page.locator("main").evaluate("m => m.innerText.trim() === ''"), f"{path} is blank"
    await page.shot(f"forms-{user}")


async def test_sign_in_and_move_around_from_the_keyboard_alone(open_console, password):
    page = await open_console("rep-n2", sign_in=False)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.name") == "user"
    await page.keyboard.type("rep-n2@example.com")  # the email works as well as the id
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/today")
    # skip link first, then the navigation: the page is reachable without a mouse
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Today"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Customers"
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/customers")
    await page.get_by_role("button", name="Sign out").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/signin")
    assert await page.evaluate("sessionStorage.getItem('crm.session')") is None


async def test_a_bad_report_period_shows_the_apis_error_not_a_blank_page(open_console):
    page = await open_console("mgr-north")
    await page.wait_for_url("**/dashboard")
    await page.get_by_label("Headline & funnel period").fill("2026-Q9")
    await page.get_by_role("button", name="Filter").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "period" in (await alert.inner_text()).lower()
    assert await page.get_by_role("button", name="Retry").count() == 1

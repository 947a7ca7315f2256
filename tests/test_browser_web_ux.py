"""The web chat as a citizen meets it, in a real browser: refusals, reopening, layout."""

from __future__ import annotations

import re
from typing import Any

from bot.app import BorgerDialog
from tests.browsers import ORGANISATION, open_page

STALE = "Den knap virker ikke længere. Skriv /start for at komme videre."
CHOOSE_ONE = "Vælg mindst ét svar, før du trykker Færdig."
PHONE = {"width": 375, "height": 740}


def question(page: Any, number: int) -> Any:
    """The (latest) message that asks the question with this number (the "3" of "3/8")."""
    mark = re.compile(rf"(^|\s){number}/\d+ ·")
    return page.locator("article.message.bot").filter(has_text=mark).last


async def test_a_refused_press_leaves_the_question_answerable_with_the_reason_beside_it(
    browser: Any,
    demo_app: BorgerDialog,
) -> None:
    page = await open_page(browser, demo_app)
    page.set_default_timeout(10_000)
    await page.get_by_role("button", name="Ja, jeg giver samtykke").click()
    await page.get_by_role("button", name="Under 25").wait_for()
    # The same press twice (a double tap, a second tab): the first answers, the second is
    # refused. The button is kept, as a tab that was offline would still show it.
    await page.evaluate(
        """() => {
          const b = [...document.querySelectorAll('.buttons button')]
            .find((b) => b.textContent === 'Under 25');
          window.oldButton = b;
          b.click();
          b.disabled = false;
          b.click();
        }"""
    )
    first = question(page, 1)
    await first.locator("[role=alert]").filter(has_text=STALE).wait_for()
    await first.get_by_text("✅ Under 25").wait_for()
    # The question now asked still answers.
    await page.get_by_role("button", name="Nord").click()
    await question(page, 3).wait_for()
    # A stale button (the old tab's): refused beside its own message; the current one works.
    await page.evaluate(
        """() => {
          document.querySelectorAll('article [role=alert]').forEach((note) => note.remove());
          window.oldButton.disabled = false;
          window.oldButton.click();
        }"""
    )
    await first.locator("[role=alert]").filter(has_text=STALE).wait_for()
    third = question(page, 3)
    # "Færdig" with nothing ticked: the reason inside the question, every button still works.
    await third.get_by_role("button", name="Færdig").click()
    await third.locator("[role=alert]").filter(has_text=CHOOSE_ONE).wait_for()
    await page.wait_for_function(
        "() => [...document.querySelectorAll('article .buttons button')].every((b) => !b.disabled)"
    )
    assert await third.get_by_role("button", name="Færdig").is_enabled()
    await third.get_by_role("button", name="☐ Løber").click()
    await third.get_by_role("button", name="☑ Løber").wait_for()
    await third.get_by_role("button", name="Færdig").click()
    await third.get_by_text("✅ Løber").wait_for()
    await question(page, 4).get_by_role("button", name="3").wait_for()
    assert await third.locator("[role=alert]").count() == 0


async def test_opening_the_link_again_resumes_instead_of_starting_over(
    browser: Any,
    demo_app: BorgerDialog,
) -> None:
    page = await open_page(browser, demo_app)
    page.set_default_timeout(10_000)
    await page.get_by_role("button", name="Ja, jeg giver samtykke").click()
    await page.get_by_role("button", name="Under 25").click()
    await page.get_by_role("button", name="Nord").click()
    await question(page, 3).get_by_role("button", name="☐ Går tur").click()
    await question(page, 3).get_by_role("button", name="☑ Går tur").wait_for()
    # The next day, the same link in a new tab of the same browser.
    again = await page.context.new_page()
    await again.goto(f"{demo_app.settings.public_base_url}/chat?c=friluftsliv")
    await again.get_by_text("Velkommen tilbage til »Ny friluftspolitik«").wait_for()
    # The question waiting is asked once more, still ticked, and its old copy no longer answers.
    await again.get_by_text("⤵ Spørgsmålet er stillet igen nedenfor.").wait_for()
    live = again.locator("article.message.bot", has=again.locator(".buttons"))
    await live.get_by_role("button", name="☑ Går tur").wait_for()
    assert await live.count() == 1
    log = await again.locator("#log").inner_text()
    assert log.count("Formål:") == 1
    assert await again.get_by_role("button", name="Ja, jeg giver samtykke").count() == 0
    # The citizen's bubble for each opening names the consultation, not a command.
    bubbles = await again.locator("article.message.citizen").all_inner_texts()
    assert [b.split(":", 1)[-1].strip() for b in bubbles] == ["Ny friluftspolitik"] * 2
    assert "/start" not in log
    await live.get_by_role("button", name="Færdig").click()
    await question(again, 4).wait_for()
    # The first tab follows along: the same single live question.
    await question(page, 4).get_by_role("button", name="3").wait_for()


async def test_after_forget_the_same_tab_reloaded_opens_the_consultation_anew(
    browser: Any,
    demo_app: BorgerDialog,
) -> None:
    """/glem erases the transcript; the tab, reloaded, opens the consultation again instead of
    staying empty (it remembered that it had opened it)."""
    page = await open_page(browser, demo_app)
    page.set_default_timeout(10_000)
    await page.get_by_role("button", name="Ja, jeg giver samtykke").click()
    await page.get_by_role("button", name="Under 25").wait_for()
    await page.get_by_role("textbox").fill("/glem")
    await page.get_by_role("textbox").press("Enter")
    await page.get_by_role("button", name="Ja, slet").click()
    await page.get_by_text("Dine oplysninger og svar er slettet.").wait_for()
    assert await page.locator("article.message.bot").count() == 1
    await page.reload()
    await page.get_by_role("button", name="Ja, jeg giver samtykke").wait_for()
    assert "Formål:" in await page.locator("#log").inner_text()


async def stays_in_view(page: Any, selector: str) -> None:
    box = await page.locator(selector).bounding_box()
    assert box is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= PHONE["height"] + 1


async def test_on_a_phone_the_header_and_field_stay_put_and_answers_are_kept(
    browser: Any,
    demo_app: BorgerDialog,
) -> None:
    context = await browser.new_context(viewport=PHONE, locale="da-DK", bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(f"{demo_app.settings.public_base_url}/chat?c=friluftsliv")
    header = page.locator("header.chat-header")
    await header.get_by_role("heading", name="Ny friluftspolitik").wait_for()
    await header.get_by_text(ORGANISATION).wait_for()
    await page.get_by_role("button", name="Ja, jeg giver samtykke").click()
    await page.get_by_role("button", name="Under 25").click()
    await page.get_by_role("button", name="Nord").click()
    third = question(page, 3)
    await third.get_by_role("button", name="☐ Går tur").click()
    ticked = third.get_by_role("button", name="☑ Går tur")
    assert await ticked.get_attribute("aria-pressed") == "true"
    assert await third.get_by_role("button", name="☐ Cykler").get_attribute("aria-pressed") == (
        "false"
    )
    # Back is a secondary action, drawn unlike the answers.
    back = third.get_by_role("button", name="◀ Tilbage")
    assert "secondary" in (await back.get_attribute("class") or "")
    colours = "(b) => getComputedStyle(b).backgroundColor"
    assert await back.evaluate(colours) != await ticked.evaluate(colours)
    await third.get_by_role("button", name="Færdig").click()
    await question(page, 4).get_by_role("button", name="1").click()
    await question(page, 5).get_by_role("button", name="Ja").click()
    await page.locator('.message.bot[data-expects-text="true"]').wait_for()
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'input'")
    # Longer than the question takes: the bot says why, and the text stays in the field.
    long_answer = " ".join(["Flere stier ved skoven."] * 20)
    await page.fill("#input", long_answer)
    await page.keyboard.press("Enter")
    await page.locator("#composer-note").filter(has_text="plads til 300").wait_for()
    assert await page.input_value("#input") == long_answer
    # Longer than the chat takes: kept, with the reason beside it, never sent.
    too_long = "x" * 2100
    await page.fill("#input", too_long)
    await page.keyboard.press("Enter")
    await page.locator("#composer-note").filter(has_text="Beskeden er for lang").wait_for()
    assert await page.input_value("#input") == too_long
    assert await page.get_attribute("#input", "aria-invalid") == "true"
    # A long conversation scrolls between the header and the field; the page itself does not.
    await page.locator("#log").evaluate("(log) => { log.scrollTop = log.scrollHeight; }")
    assert await page.evaluate("document.scrollingElement.scrollHeight <= innerHeight")
    assert await page.locator("#log").evaluate("(log) => log.scrollHeight > log.clientHeight")
    await stays_in_view(page, "h1")
    await stays_in_view(page, "#input")
    composer = await page.locator("#composer").bounding_box()
    assert composer is not None
    assert composer["y"] + composer["height"] >= PHONE["height"] - 1
    await page.locator("#log").evaluate("(log) => { log.scrollTop = 0; }")
    await stays_in_view(page, "#input")
    # The shortcuts do not all fit: the row fades out on the right until scrolled to its end.
    menu = page.locator("nav.menu")
    fade = "(m) => getComputedStyle(m).maskImage || getComputedStyle(m).webkitMaskImage"
    assert "gradient" in await menu.evaluate(fade)
    await menu.get_by_role("button", name="Privatliv").focus()  # the last one, scrolled to
    await page.wait_for_function("!document.querySelector('nav.menu').classList.contains('more')")
    assert "gradient" not in await menu.evaluate(fade)
    await context.close()

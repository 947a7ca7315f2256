"""The web chat as a citizen meets it, in a real browser: refusals, reopening, layout."""

from __future__ import annotations

import re
from typing import Any

from bot.app import BorgerDialog
from tests.test_browser import browser, demo_app, open_page  # noqa: F401  (fixtures)

STALE = "Den knap virker ikke længere. Skriv /start for at komme videre."
CHOOSE_ONE = "Vælg mindst ét svar, før du trykker Færdig."


def question(page: Any, number: int) -> Any:
    """The (latest) message that asks the question with this number (the "3" of "3/8")."""
    mark = re.compile(rf"(^|\s){number}/\d+ ·")
    return page.locator("article.message.bot").filter(has_text=mark).last


async def test_a_refused_press_leaves_the_question_answerable_with_the_reason_beside_it(
    browser: Any,  # noqa: F811
    demo_app: BorgerDialog,  # noqa: F811
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
    browser: Any,  # noqa: F811
    demo_app: BorgerDialog,  # noqa: F811
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

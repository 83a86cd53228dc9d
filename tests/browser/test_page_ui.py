"""The page around the tabs, in a real browser: the Model panel is a readable table, and the random-weights
notice says how to get real results without naming the default model as if it were another one."""

from playwright.sync_api import expect
from support.browser import shots


def test_the_model_panel_is_a_readable_table_under_a_notice_that_names_no_other_default(fake_page, fake):
    page = fake_page
    notice = page.locator("#random-weights-notice")
    expect(notice).to_contain_text("answers and images are noise")
    expect(notice).not_to_contain_text("--model deepseek-community/Janus-Pro-1B")
    expect(notice).to_contain_text("without --model, which loads Janus-Pro-1B")

    page.locator("#model-panel").get_by_text("Model").first.click()
    table = page.locator("#model-info table")
    expect(table).to_be_visible()
    rows = dict(
        row.locator("td").all_inner_texts()[:2]
        for row in table.locator("tbody tr").all()  # label -> value
    )
    info = fake.info()
    assert rows["Model"] == info["model_id"]
    assert rows["Device"] == "cpu" and rows["Data type"] == "float32" and rows["Quantization"] == "none"
    assert rows["Memory (weights)"] == f"{info['footprint_bytes'] / 2**30:.2f} GiB"
    assert rows["Load time"].endswith(" s") and rows["Random weights"] == "yes"
    expect(page.locator("#model-panel")).not_to_contain_text("footprint_bytes")  # no raw JSON
    shots(page, "model-panel")

// Loads the operator console in headless Chromium, signs in with an operator token, waits for
// the page to render, and prints what it shows as JSON (tables and the usage numbers), after
// saving a screenshot. Used by the test console::the_console_renders_in_a_real_browser.
//
// Usage: node scripts/console_check.cjs <base url> <operator token> <screenshot path>
// Env: OMNIGRAPH_PLAYWRIGHT (a folder whose node_modules holds playwright-core),
//      OMNIGRAPH_CHROMIUM (default /usr/bin/chromium).
"use strict";

const path = require("path");
const { chromium } = require(path.join(process.env.OMNIGRAPH_PLAYWRIGHT, "node_modules", "playwright-core"));

async function main() {
  const [base, token, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.OMNIGRAPH_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const outside = [];
    page.on("request", (request) => {
      if (!request.url().startsWith(base)) outside.push(request.url());
    });
    await page.goto(`${base}/console`);
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForSelector("#content:not([hidden])", { timeout: 15000 });
    await page.waitForSelector("#usage .tenant-usage", { timeout: 15000 });
    const shown = await page.evaluate(() => {
      const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)]
        .map((tr) => [...tr.children].map((td) => td.textContent));
      const usage = {};
      for (const box of document.querySelectorAll("#usage .tenant-usage")) {
        const fields = {};
        for (const dd of box.querySelectorAll("dd")) fields[dd.dataset.field] = dd.textContent;
        fields.bars = box.querySelectorAll("svg.chart rect").length;
        usage[box.dataset.tenant] = fields;
      }
      return { tenants: rows("tenants"), warm: rows("warm"), usage, status: document.querySelector("#status").textContent };
    });
    await page.screenshot({ path: screenshot, fullPage: true });
    shown.outside_requests = outside;
    process.stdout.write(JSON.stringify(shown));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});

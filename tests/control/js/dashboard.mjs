// Loads the control plane's admin dashboard in Debian's headless Chromium (playwright-core,
// no downloaded browser), signs in with the operator token through the page's form, waits for
// the agents and the rollout to show, takes a screenshot, and prints what it saw as JSON:
// {agents, rollouts, buttons, consoleErrors, pageErrors, urls, tokenInStorage, screenshot}.
// Usage: node dashboard.mjs <dashboard-url> <token> <screenshot.png> <agent-id> <rollout-id>
import { chromium } from "playwright-core";

const [url, token, shot, agentId, rolloutId] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = { consoleErrors: [], pageErrors: [], urls: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("request", (r) => out.urls.push(r.url()));
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#login-button");
  await page.waitForSelector(`#agents tbody tr >> text=${agentId}`, { timeout: 60000 });
  await page.waitForSelector(`#rollouts tbody tr >> text=${rolloutId}`, { timeout: 60000 });
  out.agents = await page.$$eval("#agents tbody tr", (rows) =>
    rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
  out.rollouts = await page.$$eval("#rollouts tbody tr", (rows) =>
    rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
  out.buttons = await page.$$eval("#rollouts button", (bs) => bs.map((b) => b.dataset.action));
  out.tokenInStorage = await page.evaluate(() => sessionStorage.getItem("edgecoder-admin-token"));
  out.pageUrl = page.url();
  await page.screenshot({ path: shot, fullPage: true });
  out.screenshot = shot;
} catch (e) {
  out.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

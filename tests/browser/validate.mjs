// Validates HTML files against html-validate's recommended rules (the HTML standard's content
// models and attributes, plus accessibility rules: labels, alt text, headings, landmarks) for
// tests/e2e/browser.rs. `node tests/browser/validate.mjs FILE...` prints one JSON line a file,
// {file, valid, problems: ["LINE:COL rule: message", ...]}, and exits 1 if any is invalid.
import { HtmlValidate } from "html-validate";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tests/browser/validate.mjs FILE...");
  process.exit(2);
}
const validator = new HtmlValidate({ extends: ["html-validate:recommended"] });
let invalid = 0;
for (const file of files) {
  const report = await validator.validateFile(file);
  const problems = report.results.flatMap((r) =>
    r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId}: ${m.message}`),
  );
  if (!report.valid) invalid += 1;
  console.log(JSON.stringify({ file, valid: report.valid, problems }));
}
process.exit(invalid === 0 ? 0 : 1);

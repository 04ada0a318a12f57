// The operator CLI executable: wire the real process to ctl/main.ts. Nothing else.
import { main } from '../ctl/main.js';

main({
  argv: process.argv.slice(2),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
}).then((code) => {
  process.exitCode = code;
});

import { runCli } from './run-cli'

// The `attune` command's entry point (bundled as out/main/cli.js, started by bin/attune.js).
process.exitCode = await runCli(process.argv.slice(2))

/**
 * Runs a benchmark's `main` and exits with its outcome: 0, or 1 after printing the error. Exiting
 * explicitly ends the process even while servers, sockets or timers a benchmark left are open.
 */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

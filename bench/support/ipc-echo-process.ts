// The floor of a process hop: a child that sends every IPC message straight back (machine calibration).
process.on('message', (message) => process.send?.(message));
process.send?.('ready');

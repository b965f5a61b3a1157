"""Training: data, the loop, run folders, devices, speed levers, plots and export."""

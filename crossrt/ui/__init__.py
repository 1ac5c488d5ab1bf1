"""The user interface: the console and its progress bars, the result tables, the plots. The only
place rich and matplotlib load; nothing that measures imports it."""

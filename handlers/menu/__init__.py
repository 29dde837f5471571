"""The main menu: /start, /help, /language, and what nothing else took."""

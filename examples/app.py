"""The example app every example workflow registers on."""

from sdk import App

app = App("shop")

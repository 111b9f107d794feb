"""The App your workflows register on. Its name shows in logs."""

from sdk import App

app = App("my-app")

"""The Wireshark side of pcapip: a Lua dissector that shows TOA options like ``pcapip show``."""

from pcapip.wireshark.install import default_install_dir, install_dir, install_plugin
from pcapip.wireshark.layout import wireshark_field_name
from pcapip.wireshark.lua import PLUGIN_FILENAME, render_plugin

__all__ = [
    "PLUGIN_FILENAME",
    "default_install_dir",
    "install_dir",
    "install_plugin",
    "render_plugin",
    "wireshark_field_name",
]

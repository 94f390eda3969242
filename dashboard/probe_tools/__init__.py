"""The Probe page's four tools, one module each: edit the digit, bend it along a range, find
the smallest change toward another class, follow it through training. Each has
``render(view, base, title)``: the digit probed (uint8 (28, 28)) and what to call it."""

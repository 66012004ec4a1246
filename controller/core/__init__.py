"""The pure core of the controller: decide, machine rules, plan. No I/O, no clock."""

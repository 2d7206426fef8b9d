"""The Stratum node daemon (`stratum node`): enrolls a machine with the control
plane, reports its capabilities, and keeps a heartbeat session alive."""

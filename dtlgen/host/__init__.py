"""Host-side code of the engines: what the board's processor (or the simulation testbench) runs."""

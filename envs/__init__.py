"""MuJoCo simulation tasks as gymnasium environments (ids under ``imitation/``)."""

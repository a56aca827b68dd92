"""Pure Python, no bpy: config, jobs, dispatcher, scene spec, pipeline."""

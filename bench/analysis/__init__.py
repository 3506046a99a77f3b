"""The paper-specific analysis: the report's research questions (:mod:`.report`) and the scale
study (:mod:`.scale`), built on the core and on the fronts' tables and experiments."""

"""The forgetwatch Streamlit dashboard: thin pages over the view models in ``review``."""

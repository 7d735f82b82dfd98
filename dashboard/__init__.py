"""The forgetwatch Streamlit dashboard: thin pages over ``forgetwatch.queries``."""

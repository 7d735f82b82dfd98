"""Dashboard pages: each file is one page script, run by ``st.navigation`` from ``app.py``."""

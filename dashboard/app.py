"""Loopline dashboard: log in, then one page per part of the lifecycle.

Run from the project folder:
``streamlit run dashboard/app.py --server.address 127.0.0.1 --browser.gatherUsageStats false``
"""

from __future__ import annotations

import streamlit as st

from loaders import common
from loopline.users import UserStoreError, user_store

st.set_page_config(page_title="Loopline", page_icon=":material/all_inclusive:", layout="wide")


def login() -> None:
    st.title("Loopline")
    try:
        store = user_store(common.paths())
        anyone = bool(store.users())
    except (FileNotFoundError, UserStoreError) as exc:
        st.error(str(exc))
        return
    if not anyone:
        common.empty(
            "No dashboard users yet",
            "create one with `loopline users add NAME --role operator`, then reload",
        )
        return
    with st.form("login"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Log in", type="primary"):
            user = store.verify(name.strip(), password)
            if user is None:
                st.error("Wrong user name or password.")
            else:
                st.session_state[common.USER_KEY] = user.name
                st.rerun()


try:
    common.warm_up(common.paths().registry_url, prefect=common.prefect_api() is not None)
    user = common.current_user()
except (FileNotFoundError, UserStoreError) as exc:
    st.error(str(exc))
    st.stop()
if user is None:
    st.navigation([st.Page(login, title="Log in", icon=":material/login:")]).run()
else:
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        if st.button("Log out", icon=":material/logout:"):
            st.session_state.pop(common.USER_KEY, None)
            st.rerun()
    pages = [st.Page(path, title=title, icon=icon) for path, title, icon in common.PAGES]
    st.navigation(pages).run()

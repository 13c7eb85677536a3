from slipway.config import Settings
from slipway import db
from slipway.models import User


def test_nested_rollback_keeps_outer_transaction(tmp_path):
    s = Settings(data_dir=tmp_path)
    db.upgrade_database(s)
    f = db.make_session_factory(db.make_engine(s))
    with f() as session:
        session.add(User(username="outer", is_admin=False))
        session.flush()
        try:
            with session.begin_nested():
                session.add(User(username="inner", is_admin=False))
                session.flush()
                raise RuntimeError
        except RuntimeError:
            pass
        session.rollback()
    with f() as session:
        assert session.query(User).count() == 0
